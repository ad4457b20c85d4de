"""The prior's walk over a grid: tiles cover it once, and the decoder's step-by-step walk sees exactly
the frequencies the encoder's parallel pass gives."""
import numpy as np
import pytest

from vqcodec.walk import TILE_GROUP, TokenGrid, group_frequencies, tile_groups, tile_layout, walk_prior


def test_tiles_cover_the_grid_exactly_once():
    covered = np.zeros((37, 21), int)
    for y, x, th, tw in tile_layout(37, 21, 16):
        covered[y:y + th, x:x + tw] += 1
    assert (covered == 1).all()


def test_groups_keep_the_raster_order_of_the_tiles():
    groups = tile_groups(9, 70, 2)  # 5 x 35 tiles
    assert [t for g in groups for t in g] == tile_layout(9, 70, 2)
    assert [len(g) for g in groups[:-1]] == [TILE_GROUP] * (len(groups) - 1)


def test_token_grid_rejects_out_of_range_indices():
    with pytest.raises(ValueError):
        TokenGrid(np.full((1, 2, 2), 8), 8)
    with pytest.raises(ValueError):
        TokenGrid(np.full((1, 2, 2), -1), 8)


@pytest.mark.parametrize("quality", [1, 2])
def test_the_step_by_step_walk_sees_the_frequencies_of_the_parallel_pass(random_prior, quality):
    K, prior = 40, random_prior(3, 40, 2, 2)
    grid = TokenGrid(np.random.default_rng(quality).integers(0, K, (quality, 3, 40)), K)  # several groups
    symbols, frequencies = zip(*(group_frequencies(prior, grid, g) for g in tile_groups(3, 40, 2)))
    symbols, frequencies = np.concatenate(symbols), np.concatenate(frequencies)
    seen, done = [], 0

    def replay(f: np.ndarray) -> np.ndarray:  # hands back the grid's own symbols, in coding order
        nonlocal done
        seen.append(f)
        done += len(f)
        return symbols[done - len(f):done]

    np.testing.assert_array_equal(walk_prior(prior, quality, 3, 40, replay), grid.indices)
    np.testing.assert_array_equal(np.concatenate(seen), frequencies)
