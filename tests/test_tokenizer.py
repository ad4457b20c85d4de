"""The VQ-GAN tokenizer of the shipped model: grids of the right shape, residual depths that refine, and
pixels that survive the networks' value range."""
import numpy as np
import torch

from vqcodec.tokenizer import to_pixels, to_unit_range


def test_every_8_bit_value_survives_the_unit_range():
    pixels = torch.arange(256, dtype=torch.uint8)
    x = to_unit_range(pixels)
    assert x.min() == -1 and x.max() == 1
    assert torch.equal(to_pixels(x), pixels)
    assert torch.equal(to_pixels(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))


def test_each_depth_brings_the_quantized_latent_closer(model, small_photo):
    tokenizer = model.tokenizer
    x = to_unit_range(torch.from_numpy(small_photo).permute(2, 0, 1)[None])
    z = tokenizer.latent(x)
    f = tokenizer.cfg.downsample
    assert z.shape == (1, tokenizer.cfg.code_dim, 96 // f, 128 // f)
    errors = []
    for quality in range(1, model.levels + 1):
        indices = tokenizer.quantize_latent(z, quality)
        assert indices.shape == (1, quality, 96 // f, 128 // f)
        errors.append(float(((tokenizer.quantizer.lookup(indices) - z) ** 2).mean()))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_a_grid_decodes_to_a_picture_f_times_its_size(model, small_photo):
    tokenizer = model.tokenizer
    x = to_unit_range(torch.from_numpy(small_photo).permute(2, 0, 1)[None])
    picture = tokenizer.decode(tokenizer.encode(x, 2))
    assert picture.shape == x.shape
    assert picture.min() >= -1 and picture.max() <= 1
    assert np.abs(to_pixels(picture).numpy().astype(int) - to_pixels(x).numpy()).mean() < 40
