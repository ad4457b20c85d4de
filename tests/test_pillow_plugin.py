"""The Pillow plugin, through Pillow's own API."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec

VECTOR = Path(__file__).parent.parent / "bitstreams" / "vectors" / "coffee-q1-prior.vqc"


@pytest.fixture(scope="module", autouse=True)
def registered():
    vqcodec.register_pillow()


def test_image_open_reads_the_header_then_decodes_on_load():
    im = Image.open(VECTOR)
    assert im.format == "VQC" and im.mode == "RGB"
    header = vqcodec.describe(VECTOR)
    assert im.size == (header["width"], header["height"])
    assert im.info["quality"] == 1
    np.testing.assert_array_equal(np.asarray(im), np.asarray(vqcodec.decompress(VECTOR)))
    assert im.fp is None  # the file Pillow opened is closed once the picture is decoded


def test_image_save_maps_pillows_quality_to_the_levels_and_takes_a_level(tmp_path, small_photo):
    path = tmp_path / "x.vqc"
    Image.fromarray(small_photo).save(path, level=1)
    assert path.read_bytes() == vqcodec.compress(small_photo, quality=1)
    for quality, level in ((0, 1), (16, 1), (17, 2), (50, 3), (75, 5), (100, 6)):
        buf = io.BytesIO()
        Image.fromarray(small_photo).save(buf, format="VQC", quality=quality)
        assert Image.open(io.BytesIO(buf.getvalue())).info["quality"] == level
    for bad in (101, -1, 2.5):
        with pytest.raises(ValueError, match="Pillow's 0 to 100"):
            Image.fromarray(small_photo).save(io.BytesIO(), format="VQC", quality=bad)


def test_image_save_ignores_other_formats_options_with_a_warning(small_photo):
    buf = io.BytesIO()
    with pytest.warns(UserWarning, match="ignores the save option\\(s\\) optimize, progressive"):
        Image.fromarray(small_photo).save(buf, format="VQC", level=1, optimize=True, progressive=True)
    assert buf.getvalue() == vqcodec.compress(small_photo, quality=1)


def test_vqc_is_a_registered_extension_and_other_formats_still_open(tmp_path, small_photo):
    assert Image.registered_extensions()[".vqc"] == "VQC"
    Image.fromarray(small_photo).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        assert im.format == "PNG"


def test_a_damaged_vqc_is_not_identified(tmp_path):
    data = bytearray(VECTOR.read_bytes())
    data[-1] ^= 1
    (tmp_path / "bad.vqc").write_bytes(bytes(data))
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(tmp_path / "bad.vqc")


def test_image_save_takes_a_byte_budget(tmp_path, small_photo):
    path = tmp_path / "small.vqc"
    Image.fromarray(small_photo).save(path, max_bytes=400)
    assert path.stat().st_size <= 400 and Image.open(path).size == (128, 96)
