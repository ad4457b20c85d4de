"""The integer fine prior: what it codes decodes to the same grid, it costs about what the float prior
does, and its frequencies do not depend on the GEMM's float format."""
import numpy as np
import pytest
import torch

from vqcodec.coding import RangeDecoder, RangeEncoder
from vqcodec.fineprior import FinePrior, FinePriorConfig
from vqcodec.intfineprior import IntFinePrior, decode_fine, encode_fine
from vqcodec.train.quantize import quantize_fine_prior

CFG = FinePriorConfig(coarse_codebook_size=16, coarse_levels=2, codebook_size=8, depth=2, width=16, layers=2)


@pytest.fixture(scope="module")
def learned():
    """A float prior trained on grids whose fine codes follow their coarse codes, its twin, and the grids."""
    torch.manual_seed(0)
    coarse = torch.randint(0, 16, (8, 2, 6, 5))
    fine = (coarse[:, :1].repeat_interleave(2, 2).repeat_interleave(2, 3) % 8).repeat(1, 2, 1, 1)
    fine[:, 1] = (fine[:, 1] + torch.randint(0, 2, fine[:, 1].shape)) % 8
    prior = FinePrior(CFG)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    for _ in range(60):
        loss = prior.bits(coarse, fine).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return prior.eval(), IntFinePrior(CFG, quantize_fine_prior(prior, coarse, fine)), coarse, fine


def coded(twin, coarse, fine) -> bytes:
    encoder = RangeEncoder()
    encode_fine(twin, coarse, fine, encoder)
    return encoder.payload()


@pytest.mark.parametrize("quality", [1, 2])
def test_a_coded_fine_grid_decodes_to_itself(learned, quality):
    _, twin, coarse, fine = learned
    c, f = coarse[0].numpy(), fine[0, :quality].numpy()
    assert np.array_equal(decode_fine(twin, c, quality, RangeDecoder(coded(twin, c, f)).categorical), f)


def test_a_grid_the_prior_has_learnt_costs_far_less_than_uniform_codes(learned):
    _, twin, coarse, fine = learned
    payload = coded(twin, coarse[1].numpy(), fine[1].numpy())
    assert 8 * len(payload) < 0.3 * fine[1].numel() * np.log2(CFG.codebook_size)


def test_integer_frequencies_cost_about_what_the_float_prior_does(learned):
    prior, twin, coarse, fine = learned
    for d, second in ((0, False), (1, True)):
        freqs = twin.frequencies(coarse, fine, d, second).double()
        p = freqs.gather(-1, fine[:, d, :, :, None]) / freqs.sum(-1, keepdim=True)
        with torch.no_grad():
            q = torch.log_softmax(prior(coarse, fine, d, second).double(), 1).gather(1, fine[:, d][:, None]).exp()
        int_bits, float_bits = -p.log2().mean().item(), -q.log2().mean().item()
        assert abs(int_bits - float_bits) < 0.05 * float_bits + 0.02


def test_frequencies_are_the_same_integers_in_float32_and_float64_gemms(learned):
    _, twin, coarse, fine = learned
    in32 = twin.frequencies(coarse, fine, 1, True)
    wide = IntFinePrior(CFG, {k: v for k, v in twin.t.items()})
    wide.w = {k: v.double() for k, v in wide.w.items()}
    assert torch.equal(wide.frequencies(coarse, fine, 1, True), in32)
    assert in32.dtype == torch.int64 and int(in32.min()) >= 1


def test_frequencies_at_some_positions_are_those_of_the_whole_pass(learned):
    from vqcodec.fineprior import anchors

    _, twin, coarse, fine = learned
    where = ~anchors(*fine.shape[2:])
    assert torch.equal(twin.frequencies(coarse, fine, 1, True, where), twin.frequencies(coarse, fine, 1, True)[:, where])
