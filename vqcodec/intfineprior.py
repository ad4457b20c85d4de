"""Integer-exact inference of the fine grid's prior (fineprior.py), and the checkerboard order it codes in.

As with the transformer prior (intprior.py), a range decoder must see exactly the frequencies the encoder
used, so coding runs an integer twin of `FinePrior` in which every operation is exact:
- the embeddings are integer tables (one scale for all, folded into the first requantization), summed
  in int64;
- ReLU, then requantization to int8-range activations (0 .. ACT_MAX) by a multiplier and a shift;
- each 3x3 convolution is im2col (integer copies) and one exact matrix product (exact.exact_matmul), the
  1x1 convolution to the logits another; the logits, in 1/LOGIT_UNIT nats, become frequencies through
  the exp table stored with the weights.
`vqcodec/train/quantize.py` (quantize_fine_prior) makes the tensors from a float prior.

Coding order: fine depth by depth, each in two passes (the anchors of `fineprior.anchors`, then the
rest), positions of a pass in raster order.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .coding import RangeEncoder
from .exact import exact_matmul, requantize
from .fineprior import FinePriorConfig, anchors, phases
from .intprior import ACT_MAX, logit_frequencies


class IntFinePrior:
    """The integer twin of a FinePrior, from the tensors quantize_fine_prior writes."""

    def __init__(self, cfg: FinePriorConfig, tensors: dict[str, torch.Tensor]):
        self.cfg = cfg
        self.t = {k: v.long() for k, v in tensors.items()}
        self.shift = {k[:-len(".shift")]: int(v) for k, v in self.t.items() if k.endswith(".shift")}
        self.w = {k[:-len(".weight")]: v.t().float().contiguous() for k, v in self.t.items()
                  if k.endswith(".weight")}  # (K, N): int8 values, exact in float32 GEMMs

    def to(self, device: str | torch.device) -> "IntFinePrior":
        self.t = {k: v.to(device) for k, v in self.t.items()}
        self.w = {k: v.to(device) for k, v in self.w.items()}
        return self

    @property
    def device(self) -> torch.device:
        return self.t["phase_emb"].device

    def context(self, coarse: torch.Tensor, fine: torch.Tensor, d: int, second: bool) -> torch.Tensor:
        """FinePrior.context in integers: (B, 2h, 2w, C), int64."""
        cfg, t = self.cfg, self.t
        levels = torch.arange(cfg.coarse_levels, device=coarse.device)[None, :, None, None]
        x = t["coarse_emb"][coarse + levels * cfg.coarse_codebook_size].sum(1)
        x = x.repeat_interleave(2, 1).repeat_interleave(2, 2)
        H, W = x.shape[1:3]
        x = x + t["phase_emb"][phases(H, W, x.device)] + t["pass_emb"][2 * d + int(second)]
        if d:
            below = torch.arange(d, device=fine.device)[None, :, None, None]
            x = x + t["below_emb"][fine[:, :d] + below * cfg.codebook_size].sum(1)
        if second:
            x = x + t["anchor_emb"][fine[:, d] + d * cfg.codebook_size] * anchors(H, W, x.device)[None, :, :, None]
        return x

    def activation(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """ReLU of an accumulator (B, H, W, C), requantized to the int8-range input of the next layer."""
        return requantize(x.clamp(min=0), self.t[name + ".mult"], self.shift[name]).clamp(max=ACT_MAX)

    def conv3x3(self, a: torch.Tensor, name: str) -> torch.Tensor:
        """(B, H, W, C) int8-range -> (B, H, W, N) accumulator, zero padding, bias included. The im2col
        runs in float32, which holds int8-range values exactly (it only copies them)."""
        B, H, W, C = a.shape
        cols = F.unfold(a.permute(0, 3, 1, 2).float(), 3, padding=1).transpose(1, 2)      # (B, HW, C * 9)
        y = exact_matmul(cols, self.w[name], ACT_MAX, ACT_MAX) + self.t[name + ".bias"]
        return y.reshape(B, H, W, -1)

    def logits(self, coarse: torch.Tensor, fine: torch.Tensor, d: int, second: bool,
               where: torch.Tensor | None = None) -> torch.Tensor:
        """Integer logits (B, 2h, 2w, K) in 1/LOGIT_UNIT nats of depth d's pass; where (2h, 2w) bool: only
        at those positions, (B, n, K)."""
        x = self.context(coarse, fine, d, second)
        a = self.activation(x, "ctx")
        for i in range(self.cfg.layers):
            a = self.activation(self.conv3x3(a, f"convs.{i}"), f"convs.{i}")
        if where is not None:
            a = a[:, where]
        acc = exact_matmul(a, self.w["out"], ACT_MAX, ACT_MAX) + self.t["out.bias"]
        return requantize(acc, self.t["out.mult"], self.shift["out"])

    def frequencies(self, coarse: torch.Tensor, fine: torch.Tensor, d: int, second: bool,
                    where: torch.Tensor | None = None) -> torch.Tensor:
        """Symbol frequencies (B, 2h, 2w, K), or (B, n, K) at the positions `where`: integers >= 1."""
        return logit_frequencies(self.logits(coarse, fine, d, second, where), self.t["exp_logit"])


def _passes(depth: int, h: int, w: int, device: torch.device):
    """(d, second, positions (h, w) bool) in coding order."""
    first = anchors(h, w, device)
    for d in range(depth):
        yield d, False, first
        yield d, True, ~first


def encode_fine(prior: IntFinePrior, coarse: np.ndarray, fine: np.ndarray, encoder: RangeEncoder) -> None:
    """Code a fine grid (q, 2h, 2w) given its coarse grid (coarse_levels, h, w), after what the encoder holds."""
    c = torch.from_numpy(coarse.astype(np.int64))[None].to(prior.device)
    f = torch.from_numpy(fine.astype(np.int64))[None].to(prior.device)
    for d, second, where in _passes(fine.shape[0], *fine.shape[1:], prior.device):
        freqs = prior.frequencies(c, f, d, second, where)[0]
        encoder.categorical(fine[d][where.cpu().numpy()], freqs.cpu().double().numpy())


def decode_fine(prior: IntFinePrior, coarse: np.ndarray, quality: int,
                categorical: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The fine grid (quality, 2h, 2w) over a coarse grid, each pass's symbols drawn by categorical
    (frequencies (n, K) float64 -> symbols (n,)): a RangeDecoder's, to decode what encode_fine coded,
    or a sampler's."""
    h, w = coarse.shape[1:]
    c = torch.from_numpy(coarse.astype(np.int64))[None].to(prior.device)
    f = torch.zeros(1, quality, 2 * h, 2 * w, dtype=torch.long, device=prior.device)
    for d, second, where in _passes(quality, 2 * h, 2 * w, prior.device):
        freqs = prior.frequencies(c, f, d, second, where)[0]
        f[0, d][where] = torch.from_numpy(categorical(freqs.cpu().double().numpy())).to(prior.device)
    return f[0].cpu().numpy()


def fine_bits(prior: IntFinePrior, coarse: np.ndarray, fine: np.ndarray) -> list[float]:
    """Each fine depth's bits under the prior: about what encode_fine adds to a payload for it."""
    c = torch.from_numpy(coarse.astype(np.int64))[None].to(prior.device)
    f = torch.from_numpy(fine.astype(np.int64))[None].to(prior.device)
    bits = [0.0] * fine.shape[0]
    for d, second, where in _passes(fine.shape[0], *fine.shape[1:], prior.device):
        freqs = prior.frequencies(c, f, d, second, where)[0].double()
        p = freqs.gather(1, f[0, d][where][:, None])[:, 0] / freqs.sum(1)
        bits[d] += float(-torch.log2(p).sum())
    return bits
