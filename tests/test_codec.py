"""compress / decompress through the shipped model, as a user calls them, and the seam below them: token
grids to payloads and back, exactly, under any prior."""
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import vqcodec
from vqcodec.codec import (compress, decode_tokens, decompress, describe, detokenize, encode_tokens, reconstruct,
                           tokenize)
from vqcodec.defaults import DEFAULT_RD_LAMBDA
from vqcodec.metrics import psnr
from vqcodec.walk import TILE_GROUP, TokenGrid, tile_groups, walk_prior


def test_decompress_returns_the_tokenizers_own_reconstruction(model, small_photo):
    data = vqcodec.compress(small_photo, model=model)
    decoded = vqcodec.decompress(data)
    expected = vqcodec.reconstruct(small_photo, model=model)
    assert decoded.size == (128, 96) and decoded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(expected))


def test_same_input_gives_identical_bytes(model, small_photo):
    assert vqcodec.compress(small_photo, model=model) == vqcodec.compress(small_photo.copy(), model=model)


def test_paths_pil_images_and_arrays_give_the_same_file(model, small_photo, tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(small_photo).save(path)
    a = vqcodec.compress(small_photo, model=model)
    assert vqcodec.compress(path, model=model) == a
    assert vqcodec.compress(str(path), model=model) == a
    assert vqcodec.compress(Image.open(path), model=model) == a


@pytest.mark.parametrize("height,width", [(1, 1), (17, 301), (3000, 20)])
def test_odd_sizes_come_back_at_their_size(model, height, width):
    rng = np.random.default_rng(height)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = vqcodec.decompress(vqcodec.compress(image, quality=1, model=model))
    assert out.size == (width, height)


def test_every_quality_level_decodes_and_higher_levels_cost_more_and_look_better(model, astronaut):
    image = astronaut[::2, ::2]
    sizes, quality = [], []
    for q in range(1, model.levels + 1):
        data = vqcodec.compress(image, quality=q, model=model)
        sizes.append(len(data))
        quality.append(psnr(image, np.asarray(vqcodec.decompress(data))))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert quality[-1] > quality[0]


def latent_error(model, image, grid):
    """Squared distance between the encoder's latent and the sum of a grid's codebook entries."""
    z = model.tokenizer.latent(vqcodec.codec._to_tensor(image, model.downsample, model.device))
    return float(((model.tokenizer.quantizer.lookup(torch.from_numpy(grid)[None]) - z) ** 2).sum())


def test_rd_lambda_trades_bits_for_closeness_and_what_is_stored_is_what_reconstruct_shows(model, astronaut):
    image = astronaut[::2, ::2]
    sizes, errors = [], []
    for rd_lambda in (0.0, 0.1, 1.0):
        data = vqcodec.compress(image, quality=3, model=model, rd_lambda=rd_lambda)
        np.testing.assert_array_equal(
            np.asarray(vqcodec.decompress(data, model)),
            np.asarray(vqcodec.reconstruct(image, quality=3, model=model, rd_lambda=rd_lambda)))
        sizes.append(len(data))
        errors.append(latent_error(model, image, vqcodec.codec.decode_grid(data, model)[1].indices))
    assert sizes[0] > sizes[1] > sizes[2]       # a bit weighs more: fewer bits ...
    assert errors[0] < errors[1] < errors[2]    # ... for codes further from the encoder's latent


def test_the_encoders_search_finds_codes_closer_than_greedy_quantization(model, astronaut):
    image = astronaut[::2, ::2]
    x = vqcodec.codec._to_tensor(image, model.downsample, model.device)
    for quality in (1, 3):
        greedy = model.tokenizer.encode(x, quality)[0].numpy()
        searched = vqcodec.codec.tokenize(image, quality, model, rd_lambda=0.0).indices
        if quality == 1:  # one depth: the nearest code is the closest
            np.testing.assert_array_equal(searched, greedy)
        else:
            assert latent_error(model, image, searched) < latent_error(model, image, greedy)


@pytest.mark.parametrize("rd_lambda", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_invalid_rd_lambda_is_refused(model, small_photo, rd_lambda):
    with pytest.raises(ValueError, match="rd_lambda"):
        vqcodec.compress(small_photo, model=model, rd_lambda=rd_lambda)


def test_grayscale_is_read_silently_and_comes_back_grey(model, small_photo):
    gray = Image.fromarray(small_photo).convert("L")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = vqcodec.decompress(vqcodec.compress(gray, model=model))
    assert out.mode == "L" and out.size == gray.size


@pytest.mark.parametrize("make,message", [
    (lambda a: Image.fromarray(np.dstack([a, np.full(a.shape[:2], 128, np.uint8)]), "RGBA"), "alpha"),
    (lambda a: Image.fromarray(a).convert("LA"), "alpha"),
    (lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257), "16-bit"),
    (lambda a: a.astype(np.uint16) * 257, "16-bit"),
])
def test_what_is_dropped_is_said_once(model, small_photo, make, message):
    with pytest.warns(vqcodec.ConversionWarning, match=message) as record:
        data = vqcodec.compress(make(small_photo), model=model)
    assert len(record) == 1
    assert vqcodec.decompress(data).size == (128, 96)


def test_sixteen_bit_input_matches_its_eight_bit_version(model, small_photo):
    with pytest.warns(vqcodec.ConversionWarning):
        deep = vqcodec.compress(small_photo.astype(np.uint16) * 257, model=model)
    assert deep == vqcodec.compress(small_photo, model=model)


def test_palette_image(model, small_photo):
    pal = Image.fromarray(small_photo).convert("P", palette=Image.Palette.ADAPTIVE)
    assert vqcodec.decompress(vqcodec.compress(pal, model=model)).size == pal.size


def test_invalid_quality_is_refused(model, small_photo):
    for q in (0, model.levels + 1):
        with pytest.raises(ValueError, match="quality"):
            vqcodec.compress(small_photo, quality=q, model=model)


def another_model(folder):
    """A copy of the default model with one setting changed: any change of the files is another model."""
    shutil.copytree(vqcodec.zoo.MODELS[vqcodec.zoo.DEFAULT_MODEL], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["default_quality"] = 3 - cfg["default_quality"] % 2
    (folder / "config.json").write_text(json.dumps(cfg))
    return vqcodec.load_model(folder)


def test_file_from_another_model_is_refused_naming_both(model, small_photo, tmp_path):
    other = another_model(tmp_path / "other-model")
    assert other.model_id != model.model_id
    data = vqcodec.compress(small_photo, quality=1, model=other)
    with pytest.raises(vqcodec.ModelMismatch) as e:
        vqcodec.decompress(data)
    assert other.model_id.hex() in str(e.value)
    with pytest.raises(vqcodec.ModelMismatch) as e:
        vqcodec.decompress(data, model=model)
    assert other.model_id.hex() in str(e.value) and model.model_id.hex() in str(e.value)
    assert vqcodec.decompress(data, model=other).size == (128, 96)


def test_file_from_a_retired_model_says_where_to_find_it(model, small_photo, tmp_path, monkeypatch):
    retired = another_model(tmp_path / "retired-model")
    monkeypatch.setitem(vqcodec.zoo.RETIRED_MODELS, retired.model_id, "old-model, shipped by vqcodec 0.0")
    data = vqcodec.compress(small_photo, quality=1, model=retired)
    with pytest.raises(vqcodec.ModelMismatch, match="old-model, shipped by vqcodec 0.0"):
        vqcodec.decompress(data)
    d = vqcodec.describe(data)
    assert (d["model"], d["made_by"], d["retired"]) == (None, None, "old-model, shipped by vqcodec 0.0")
    assert vqcodec.describe(vqcodec.compress(small_photo, quality=1, model=model))["retired"] is None


def test_sample_draws_images_of_the_asked_size(model):
    a = vqcodec.sample(2, size=(40, 24), seed=1, top_k=50, model=model)
    b = vqcodec.sample(2, size=(40, 24), seed=1, top_k=50, model=model)
    assert [im.size for im in a] == [(40, 24)] * 2
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))


def test_images_larger_than_a_cnn_patch_go_through_in_patches_without_visible_seams(model, astronaut, monkeypatch):
    from vqcodec import tokenizer

    image = np.concatenate([astronaut, astronaut[:, ::-1], astronaut], 1)[100:260, :1100]  # 69 x 10 tokens
    assert -(-image.shape[1] // model.downsample) > tokenizer.CNN_PATCH
    patched = np.asarray(vqcodec.decompress(vqcodec.compress(image, model=model), model=model))
    monkeypatch.setattr(tokenizer, "CNN_PATCH", 10 ** 6)  # the whole image in one pass, for reference
    whole = np.asarray(vqcodec.reconstruct(image, model=model))
    assert patched.shape == image.shape
    assert psnr(patched, whole) > 25
    assert psnr(patched, image) > psnr(whole, image) - 0.5


# Token grids <-> payload: every grid comes back exactly, under any prior, at any shape.

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (4, 4), (9, 5), (2, 13)])
def test_random_grids_round_trip_under_random_priors(random_prior, seed, shape):
    rng = np.random.default_rng(seed)
    K, depth, window = int(rng.integers(2, 300)), 3, 4
    prior = random_prior(seed, K, depth, window)
    quality = int(rng.integers(1, depth + 1))
    grid = TokenGrid(rng.integers(0, K, (quality, *shape)), K)
    payload = encode_tokens(grid, prior)
    decoded = decode_tokens(payload, quality, shape, K, prior)
    np.testing.assert_array_equal(decoded.indices, grid.indices)


def test_prior_samples_code_below_uniform_cost(random_prior):
    """Symbols drawn from the prior itself must cost less than log2 K bits each."""
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


def test_grids_of_several_tile_groups_round_trip(random_prior):
    rng = np.random.default_rng(2)
    prior = random_prior(2, 50, 2, 2)
    shape = (3, 40)  # 2 x 20 tiles of 2 x 2: more than one group
    assert len(tile_groups(*shape, 2)) > 1 and len(tile_groups(*shape, 2)[0]) == TILE_GROUP
    grid = TokenGrid(rng.integers(0, 50, (2, *shape)), 50)
    decoded = decode_tokens(encode_tokens(grid, prior), 2, shape, 50, prior)
    np.testing.assert_array_equal(decoded.indices, grid.indices)


def test_a_grey_picture_decodes_grey_and_a_colour_one_in_colour(model, small_photo):
    from PIL import Image

    grey = np.asarray(Image.fromarray(small_photo).convert("L"))
    for given in (grey, np.repeat(grey[..., None], 3, axis=2), Image.fromarray(grey)):
        data = vqcodec.compress(given, quality=1, model=model)
        decoded = vqcodec.decompress(data, model)
        assert decoded.mode == "L" and decoded.size == (128, 96) and vqcodec.describe(data)["grey"]
        assert vqcodec.reconstruct(given, quality=1, model=model).mode == "L"
    colour = vqcodec.compress(small_photo, quality=1, model=model)
    assert vqcodec.decompress(colour, model).mode == "RGB" and not vqcodec.describe(colour)["grey"]
    # the grey file holds the same grid as the same picture given as RGB: only the flag differs
    assert vqcodec.codec.decode_grid(data, model)[1].indices.tolist() == \
        vqcodec.codec.tokenize(np.repeat(grey[..., None], 3, axis=2), 1, model).indices.tolist()


@pytest.fixture(scope="module")
def hierarchy_model(tmp_path_factory):
    from vqcodec.fuzz import fuzz_model
    return fuzz_model(tmp_path_factory.mktemp("hierarchy"), hierarchy=True)


def picture(seed: int = 0, height: int = 20, width: int = 28) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("coder", ["prior", "uniform"])
def test_a_hierarchys_files_decode_to_what_reconstruct_gives_at_every_level(hierarchy_model, coder):
    m = hierarchy_model
    assert (m.coarse_levels, m.levels) == (2, 4)
    for quality in range(1, m.levels + 1):
        data = compress(picture(), quality, m, coder=coder)
        assert data[3] == (3 if quality > m.coarse_levels else 2)  # version 3: the payload adds a fine grid
        expected = reconstruct(picture(), quality, m, rd_lambda=0.0 if coder == "uniform" else DEFAULT_RD_LAMBDA)
        assert np.array_equal(np.asarray(decompress(data, m)), np.asarray(expected))


def test_a_hierarchys_fine_levels_store_a_fine_grid_of_twice_the_resolution(hierarchy_model):
    m = hierarchy_model
    grids = [tokenize(picture(), q, m) for q in range(1, m.levels + 1)]
    assert [g.quality for g in grids] == [1, 2, 3, 4]
    assert grids[1].fine is None and grids[2].fine.shape == (1, 2 * 5, 2 * 7) and grids[3].fine.shape == (2, 10, 14)
    assert np.array_equal(grids[2].indices, grids[1].indices)  # the fine levels keep the top coarse level's codes
    pictures = [np.asarray(detokenize(g, 28, 20, m)) for g in grids[1:]]
    assert all(not np.array_equal(a, b) for a, b in zip(pictures, pictures[1:]))
    info = describe(compress(picture(), 4, m))
    assert info["version"] == 3 and info["tokens"] is None  # a folder model: describe does not know its grids


def test_a_hierarchys_large_pictures_go_through_in_patches_without_visible_seams(hierarchy_model, monkeypatch):
    from vqcodec import tokenizer

    m = hierarchy_model
    rng = np.random.default_rng(3)
    noise = Image.fromarray(rng.integers(0, 256, (6, 40, 3), dtype=np.uint8))
    smooth = np.asarray(noise.resize((90 * m.downsample, 3 * m.downsample), Image.BICUBIC))
    assert smooth.shape[1] // m.downsample > tokenizer.CNN_PATCH + 2 * tokenizer.CNN_HALO
    widths = []  # in tokens, of what goes through each CNN: bounded, whatever the picture's width
    record = lambda scale: lambda module, args: widths.append(-(-args[0].shape[-1] // scale))
    hooks = [m.hierarchy.tok.encoder.stem.register_forward_pre_hook(record(m.downsample)),
             m.hierarchy.tok.decoder.register_forward_pre_hook(record(1)),
             m.hierarchy.fine.synthesis.register_forward_pre_hook(record(2))]
    try:
        patched = np.asarray(decompress(compress(smooth, m.levels, m), m))
    finally:
        for hook in hooks:
            hook.remove()
    assert widths and max(widths) <= tokenizer.CNN_PATCH + 2 * tokenizer.CNN_HALO
    monkeypatch.setattr(tokenizer, "CNN_PATCH", 10 ** 6)  # the whole picture in one pass, for reference
    whole = np.asarray(reconstruct(smooth, m.levels, m))
    assert patched.shape == smooth.shape
    assert psnr(patched, whole) > 25


def test_a_file_whose_version_contradicts_its_level_is_refused(hierarchy_model):
    import zlib

    m = hierarchy_model
    for quality, version in ((2, 3), (3, 2)):
        data = bytearray(compress(picture(), quality, m))
        data[3] = version
        body = bytes(data[:-4])
        with pytest.raises(vqcodec.FormatError, match="does not match model"):
            decompress(body + zlib.crc32(body).to_bytes(4, "big"), m)


def test_a_hierarchys_file_within_a_byte_budget_may_reach_its_fine_levels(hierarchy_model):
    m = hierarchy_model
    top = compress(picture(), m.levels, m)
    sized = vqcodec.compress_to_size(picture(), max_bytes=len(top) + 40, model=m)
    assert sized.quality == m.levels and len(sized.data) <= len(top) + 40
    assert np.array_equal(np.asarray(decompress(sized.data, m)),
                          np.asarray(reconstruct(picture(), m.levels, m, rd_lambda=sized.rd_lambda)))
    small = vqcodec.compress_to_size(picture(), max_bytes=len(compress(picture(), 2, m)), model=m)
    assert small.quality <= 2
