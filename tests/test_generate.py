"""Generation beyond the prior's window (the sliding attention window), and completion: the prior finishes
a picture of which a part is kept."""
import numpy as np
import pytest
from PIL import Image

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


@pytest.fixture(scope="module")
def photo():
    from skimage import data as skdata

    return np.ascontiguousarray(skdata.chelsea()[100:196, 120:216])  # 96 x 96: 6 x 6 tokens


def test_a_completion_keeps_the_kept_tokens_and_has_the_inputs_size(model, photo):
    from vqcodec.codec import reconstruct, tokenize
    from vqcodec.generate import token_mask, keep_mask, walk_sliding_window

    out = vqcodec.complete(photo, keep="top:0.5", n=2, seed=3, model=model)
    assert len(out) == 2 and all(im.size == (96, 96) for im in out)
    assert not np.array_equal(np.asarray(out[0]), np.asarray(out[1]))  # two draws, two completions
    kept = token_mask(keep_mask("top:0.5", 96, 96), model.downsample)
    assert kept[:3].all() and not kept[3:].any()
    given = tokenize(photo, None, model).indices
    grids = walk_sliding_window(model.prior, 2, given.shape[0], 6, 6, lambda f: np.zeros(len(f), np.int64),
                                given=given, keep=kept)
    np.testing.assert_array_equal(grids[:, :, :3], np.broadcast_to(given[:, :3], grids[:, :, :3].shape))
    assert (grids[:, :, 3:] == 0).all()  # every other token came from the draws
    recon = np.asarray(reconstruct(photo, model=model))
    for im in out:  # the kept region is what reconstruct gives there; the rest is drawn
        np.testing.assert_array_equal(np.asarray(im)[:48], recon[:48])
        assert not np.array_equal(np.asarray(im)[48:], recon[48:])


def test_the_same_seed_gives_the_same_completion(model, photo):
    a = vqcodec.complete(photo, keep="left:0.5", seed=7, model=model)[0]
    b = vqcodec.complete(photo, keep="left:0.5", seed=7, model=model)[0]
    c = vqcodec.complete(photo, keep="left:0.5", seed=8, model=model)[0]
    assert a == b and a != c


def test_a_mask_keeps_where_it_is_white(model, photo, tmp_path):
    from vqcodec.generate import keep_mask, token_mask

    mask = np.zeros((96, 96, 3), np.uint8)
    mask[:, 48:] = 255  # the right half
    assert (token_mask(keep_mask(mask, 96, 96), 16) == (np.arange(6)[None] >= 3)).all()
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = vqcodec.complete(photo, keep=str(tmp_path / "mask.png"), seed=0, model=model)[0]
    assert out.size == (96, 96)


@pytest.mark.parametrize("keep, message", [("top:0", "keeps no token"), ("left:1", "keeps every token"),
                                           ("middle:0.5", "top:F or left:F"), ("top:2", "top:F or left:F")])
def test_a_completion_that_keeps_nothing_or_everything_is_refused(model, photo, keep, message):
    with pytest.raises(ValueError, match=message):
        vqcodec.complete(photo, keep=keep, model=model)


def test_a_mask_of_another_size_and_a_picture_over_the_limit_are_refused(model, photo):
    with pytest.raises(ValueError, match="same size"):
        vqcodec.complete(photo, keep=np.zeros((32, 32, 3), np.uint8), model=model)
    with pytest.raises(ValueError, match="over the limit"):
        vqcodec.complete(photo, keep="top:0.5", model=model, max_pixels=96 * 95)


def test_a_hierarchys_samples_draw_a_fine_grid_over_the_coarse_one_and_completion_refuses_it(tmp_path):
    from vqcodec.fuzz import fuzz_model
    from vqcodec.generate import complete, sample

    m = fuzz_model(tmp_path, hierarchy=True)
    coarse = sample(2, (24, 16), quality=m.coarse_levels, seed=3, model=m)
    fine = sample(2, (24, 16), quality=m.levels, seed=3, model=m)
    assert [im.size for im in fine] == [(24, 16)] * 2
    again = sample(2, (24, 16), quality=m.levels, seed=3, model=m)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(fine, again))
    assert not np.array_equal(np.asarray(coarse[0]), np.asarray(fine[0]))
    with pytest.raises(ValueError, match="coarse grids only"):
        complete(np.zeros((16, 24, 3), np.uint8), "top:0.5", model=m, quality=m.levels)
