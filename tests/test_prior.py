"""The float prior (trained, then quantized): causal in space and over depths, so that what it predicts
for a token depends only on what a decoder already has."""
import torch

from vqcodec.prior import PriorConfig, PriorModel


def test_logits_depend_only_on_earlier_tokens_and_shallower_codes():
    torch.manual_seed(0)
    cfg = PriorConfig(codebook_size=50, depth=3, window=4, n_layer=2, n_head=2, n_embd=32)
    prior = PriorModel(cfg).eval()
    codes = torch.randint(0, 50, (1, 4, 4, 3))                  # (B, th, tw, q)
    changed = codes.clone()
    changed[0, 2, 1, 1] = (codes[0, 2, 1, 1] + 1) % 50         # position 9, depth 1
    with torch.no_grad():
        a, b = prior(codes), prior(changed)                     # (B, 16, q, K)
    same = lambda u, v: torch.allclose(u, v, rtol=0, atol=1e-5)  # noqa: E731 (summation order may vary)
    assert same(a[0, :9], b[0, :9])                             # earlier positions: unchanged
    assert same(a[0, 9, :2], b[0, 9, :2])                       # same position, depths <= 1: unchanged
    assert not same(a[0, 9, 2], b[0, 9, 2])                     # the deeper code sees it
    assert not same(a[0, 10:], b[0, 10:])                       # so do later positions
