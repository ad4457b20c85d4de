"""The integer prior gives the same frequencies, bit for bit, however it is evaluated: one parallel
pass or position by position, one tile or a batch, one thread or two, int8 / float32 / float64 GEMMs,
torch tensors or numpy arrays (the host twin the decoder walks on a CPU).
(Across machines: tests/test_vectors.py decodes reference files to their recorded grids.)"""
import numpy as np
import pytest
import torch

from vqcodec.codec import tokenize
from vqcodec.exact import int8_gemm_available
from vqcodec.intprior import IntPrior
from vqcodec.walk import as_numpy


def tiles_of(grid: np.ndarray, shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tiles of the given shapes cut from the top-left of a grid (q, h, w), padded into a batch as
    the encoder does: codes (B, T, q), lengths (B,), widths (B,)."""
    T, q = max(th * tw for th, tw in shapes), grid.shape[0]
    codes = np.zeros((len(shapes), T, q), np.int64)
    for b, (th, tw) in enumerate(shapes):
        codes[b, :th * tw] = grid[:, :th, :tw].reshape(q, -1).T
    return (torch.from_numpy(codes), torch.tensor([th * tw for th, tw in shapes]),
            torch.tensor([tw for _, tw in shapes]))


def step_by_step(prior: IntPrior, codes: torch.Tensor, lengths: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Frequencies (B, T, q, K) the way the decoder computes them: one position at a time, KV-cached,
    depth by depth, on the prior's kind of array."""
    codes, lengths, widths = (prior.asarray(a.numpy()) for a in (codes, lengths, widths))
    B, T, q = codes.shape
    caches, out = prior.new_caches(), torch.zeros(B, T, q, prior.cfg.codebook_size, dtype=torch.long)
    for t in range(T):
        state = prior.step(codes[:, t - 1] if t else None, (lengths - 1).clip(max=t), widths, q, caches)
        for d in range(q):
            out[:, t, d] = torch.from_numpy(as_numpy(prior.frequencies(state, codes[:, t, :d], d)))
    return out


@pytest.fixture(scope="module")
def grid(model, astronaut) -> np.ndarray:
    return tokenize(astronaut[:256, 128:384], model.levels, model).indices  # (levels, 16, 16): one full tile


@pytest.fixture(scope="module")
def tiles(grid):
    return tiles_of(grid, [(16, 16), (5, 7), (16, 3)])


@pytest.mark.parametrize("quality", [1, 2, 3, 4, 5, 6])
def test_one_pass_equals_step_by_step_at_every_level(model, grid, quality):
    if quality > model.levels:
        pytest.skip(f"the model has {model.levels} levels")
    codes, lengths, widths = tiles_of(grid[:quality], [(16, 16), (5, 7), (1, 1)])
    one_pass = model.prior.forward(codes, lengths, widths)
    stepped = step_by_step(model.prior, codes, lengths, widths)
    for b, n in enumerate(lengths.tolist()):  # positions past a tile's length are padding
        assert torch.equal(one_pass[b, :n], stepped[b, :n])
    assert one_pass.min() >= 1


def test_the_host_twin_gives_the_same_frequencies_in_one_pass_and_step_by_step(model, tiles):
    host = model.prior.on_host()
    expected = model.prior.forward(*tiles)
    one_pass = host.forward(*(t.numpy() for t in tiles))
    assert isinstance(one_pass, np.ndarray) and np.array_equal(one_pass, expected.numpy())
    stepped = step_by_step(host, *tiles)
    for b, n in enumerate(tiles[1].tolist()):
        assert torch.equal(stepped[b, :n], expected[b, :n])


def test_the_host_twin_refuses_to_move(model):
    with pytest.raises(ValueError, match="host"):
        model.prior.on_host().to("cpu")


def test_a_tile_alone_equals_the_tile_in_a_batch(model, tiles):
    codes, lengths, widths = tiles
    batched = model.prior.forward(codes, lengths, widths)
    for b in range(len(codes)):
        alone = model.prior.forward(codes[b:b + 1, :lengths[b]], lengths[b:b + 1], widths[b:b + 1])
        assert torch.equal(alone[0], batched[b, :lengths[b]])


def test_one_thread_equals_two(model, tiles):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = model.prior.forward(*tiles)
        torch.set_num_threads(2)
        two = model.prior.forward(*tiles)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


@pytest.mark.parametrize("accumulate", [torch.int32, torch.float32, torch.float64])
def test_every_gemm_accumulation_gives_the_same_frequencies(model, tiles, accumulate):
    if accumulate == torch.int32 and not int8_gemm_available():
        pytest.skip("this torch has no int8 GEMM on the CPU")
    reference = IntPrior(model.prior.cfg, model.prior.t, accumulate=torch.float64)
    prior = IntPrior(model.prior.cfg, model.prior.t, accumulate=accumulate)
    assert prior.accumulate == accumulate
    expected = reference.forward(*tiles)
    assert torch.equal(prior.forward(*tiles), expected)
    stepped = step_by_step(prior, *tiles)
    for b, n in enumerate(tiles[1].tolist()):
        assert torch.equal(stepped[b, :n], expected[b, :n])


def test_reduced_float32_matmul_precision_changes_nothing(model, tiles):
    reference = model.prior.forward(*tiles)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")  # may allow bfloat16 passes, which are not exact
        assert torch.equal(model.prior.forward(*tiles), reference)
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_equals_cpu(model, tiles):
    on_gpu = IntPrior(model.prior.cfg, model.prior.t).to("cuda")
    assert torch.equal(on_gpu.forward(*(t.cuda() for t in tiles)).cpu(), model.prior.forward(*tiles))
