"""Range coding of token grids: every grid comes back exactly, under any prior, at any shape."""
import numpy as np
import pytest
import torch

from vqcodec.codec import decode_tokens, encode_tokens
from vqcodec.walk import TILE_GROUP, TokenGrid, tile_groups, tile_layout
from vqcodec.intprior import IntPrior
from vqcodec.prior import PriorConfig, PriorModel
from vqcodec.train.quantize import quantize_prior


def random_prior(seed: int, K: int, depth: int, window: int) -> IntPrior:
    """A random float prior with sharp distributions, quantized like a trained one (calibrated on
    random tiles)."""
    torch.manual_seed(seed)
    cfg = PriorConfig(codebook_size=K, depth=depth, window=window, n_layer=2, n_head=2, n_embd=32)
    prior = PriorModel(cfg)
    with torch.no_grad():  # sharpen the random logits so that the distributions are far from uniform
        prior.head.out.weight.mul_(50)
    calibration = torch.randint(0, K, (16, window, window, depth))
    return IntPrior(cfg, quantize_prior(prior, calibration))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (4, 4), (9, 5), (2, 13)])
def test_random_grids_round_trip_under_random_priors(seed, shape):
    rng = np.random.default_rng(seed)
    K, depth, window = int(rng.integers(2, 300)), 3, 4
    prior = random_prior(seed, K, depth, window)
    quality = int(rng.integers(1, depth + 1))
    grid = TokenGrid(rng.integers(0, K, (quality, *shape)), K)
    payload = encode_tokens(grid, prior)
    decoded = decode_tokens(payload, quality, shape, K, prior)
    np.testing.assert_array_equal(decoded.indices, grid.indices)


def test_prior_samples_code_below_uniform_cost():
    """Symbols drawn from the prior itself must cost less than log2 K bits each."""
    from vqcodec.walk import walk_prior

    K, prior = 64, random_prior(0, 64, 2, 8)
    rng = np.random.default_rng(0)
    grid = walk_prior(prior, 2, 8, 8, lambda p: np.array([rng.choice(K, p=row / row.sum()) for row in p]))
    payload = encode_tokens(TokenGrid(grid, K), prior)
    assert 8 * len(payload) < 0.8 * grid.size * np.log2(K)


@pytest.mark.parametrize("shape", [(1, 1), (5, 11)])
def test_uniform_coding_round_trips_at_log2k_bits(shape):
    rng = np.random.default_rng(1)
    grid = TokenGrid(rng.integers(0, 1024, (2, *shape)), 1024)
    payload = encode_tokens(grid, None)
    assert len(payload) <= np.ceil(grid.indices.size * 10 / 32) * 4
    np.testing.assert_array_equal(decode_tokens(payload, 2, shape, 1024, None).indices, grid.indices)


def test_grids_of_several_tile_groups_round_trip():
    rng = np.random.default_rng(2)
    prior = random_prior(2, 50, 2, 2)
    shape = (3, 40)  # 2 x 20 tiles of 2 x 2: more than one group
    assert len(tile_groups(*shape, 2)) > 1 and len(tile_groups(*shape, 2)[0]) == TILE_GROUP
    grid = TokenGrid(rng.integers(0, 50, (2, *shape)), 50)
    decoded = decode_tokens(encode_tokens(grid, prior), 2, shape, 50, prior)
    np.testing.assert_array_equal(decoded.indices, grid.indices)


def test_tiles_cover_the_grid_exactly_once():
    covered = np.zeros((37, 21), int)
    for y, x, th, tw in tile_layout(37, 21, 16):
        covered[y:y + th, x:x + tw] += 1
    assert (covered == 1).all()


def test_token_grid_rejects_out_of_range_indices():
    with pytest.raises(ValueError):
        TokenGrid(np.full((1, 2, 2), 8), 8)
