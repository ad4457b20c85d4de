"""Generation beyond the prior's window: the sliding attention window."""
import numpy as np

import vqcodec
from vqcodec.walk import walk_prior
from vqcodec.generate import walk_sliding_window


def most_likely(freqs: np.ndarray) -> np.ndarray:
    return freqs.argmax(1)


def test_sliding_window_within_one_window_is_the_codecs_walk(model):
    """On a grid no larger than the window, the sliding window sees exactly the codec's context."""
    q, h, w = 2, 5, 7
    expected = walk_prior(model.prior, q, h, w, most_likely)
    np.testing.assert_array_equal(walk_sliding_window(model.prior, 1, q, h, w, most_likely)[0], expected)


def test_sliding_window_continues_across_the_window_border(model):
    """The first window's positions are drawn as within one window; later ones keep going from what is
    already drawn (a greedy walk over a 2 x 20 grid with a 16-token window)."""
    q, h, w = 1, 2, 20
    grid = walk_sliding_window(model.prior, 1, q, h, w, most_likely)[0]
    first_row = walk_prior(model.prior, q, 1, 16, most_likely)[0, 0]
    np.testing.assert_array_equal(grid[0, 0, :9], first_row[:9])  # the window starts sliding after column 8


def test_samples_larger_than_the_window_have_the_asked_size(model):
    a = vqcodec.sample(2, size=(16 * 18, 16), seed=3, top_k=50, model=model)
    b = vqcodec.sample(2, size=(16 * 18, 16), seed=3, top_k=50, model=model)
    assert [im.size for im in a] == [(288, 16)] * 2
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))
