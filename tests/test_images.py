"""What users hand the encoder: orientation applied, every lossy conversion said once, values outside
the documented range refused."""
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from vqcodec.images import ConversionWarning, ImageReadError, to_rgb


def png16(path, rgb16: np.ndarray) -> None:
    """A 16-bit RGB PNG written chunk by chunk (Pillow writes RGB only at 8 bits)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\0" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_exif_orientation_is_applied(tmp_path, small_photo):
    path = tmp_path / "phone.jpg"
    stored = Image.fromarray(small_photo)                      # 128 x 96 as stored
    exif = Image.Exif()
    exif[0x0112] = 6                                           # displayed rotated 90 degrees clockwise
    stored.save(path, exif=exif, quality=95)
    upright = to_rgb(path)
    assert upright.shape == (128, 96, 3)
    expected = np.asarray(stored.transpose(Image.Transpose.ROTATE_270)).astype(int)
    assert np.abs(upright.astype(int) - expected).mean() < 4   # JPEG noise only


@pytest.mark.parametrize("make,message", [
    ("png16", "16-bit"),
    ("cmyk", "CMYK"),
    ("gif", "first frame of 3"),
])
def test_lossy_conversions_of_files_are_said_once(tmp_path, small_photo, make, message):
    path = tmp_path / "in"
    if make == "png16":
        path = path.with_suffix(".png")
        png16(path, small_photo.astype(np.uint16) * 257 + 3)
    elif make == "cmyk":
        path = path.with_suffix(".jpg")
        Image.fromarray(small_photo).convert("CMYK").save(path)
    else:
        path = path.with_suffix(".gif")
        frames = [Image.fromarray(np.roll(small_photo, 8 * k, 1)) for k in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(ConversionWarning, match=message) as record:
        rgb = to_rgb(path)
    assert len(record) == 1 and rgb.shape == small_photo.shape


def test_an_eight_bit_file_converts_without_a_word(tmp_path, small_photo):
    path = tmp_path / "in.png"
    Image.fromarray(small_photo).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(to_rgb(path), small_photo)


@pytest.mark.parametrize("array,match", [
    (np.full((8, 8, 3), 84.0), r"\[0, 1\]"),
    (np.full((8, 8, 3), -0.5), r"\[0, 1\]"),
    (np.full((8, 8, 3), np.nan), "NaN"),
    (np.full((8, 8, 3), np.inf, np.float32), "NaN or infinite"),
])
def test_float_arrays_outside_zero_to_one_are_refused(array, match):
    with pytest.raises(ImageReadError, match=match):
        to_rgb(array)


def test_float_arrays_in_zero_to_one_are_read(small_photo):
    np.testing.assert_array_equal(to_rgb(small_photo / 255.0), small_photo)


def swapped_profile() -> bytes:
    """An RGB ICC profile that is not sRGB: lcms's sRGB with its red and green colorants swapped."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    entries = {bytes(icc[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(struct.unpack(">I", icc[128:132])[0])}
    r, g = entries[b"rXYZ"], entries[b"gXYZ"]
    icc[r + 4:r + 12], icc[g + 4:g + 12] = icc[g + 4:g + 12], icc[r + 4:r + 12]
    return bytes(icc).replace("sRGB".encode("utf-16-be"), "Swap".encode("utf-16-be")).replace(b"sRGB", b"Swap")


def test_an_icc_profile_is_converted_to_srgb_and_said(tmp_path):
    from PIL import ImageCms

    red = Image.fromarray(np.full((8, 8, 3), (200, 50, 50), np.uint8))
    red.save(tmp_path / "swap.png", icc_profile=swapped_profile())
    with pytest.warns(ConversionWarning, match="converted from the ICC profile 'Swap.*' to sRGB"):
        assert tuple(to_rgb(tmp_path / "swap.png")[0, 0]) == (50, 200, 50)
    with warnings.catch_warnings():  # training reads the stored values, as every run before did
        warnings.simplefilter("error")
        assert tuple(to_rgb(tmp_path / "swap.png", colour_manage=False)[0, 0]) == (200, 50, 50)
    red.save(tmp_path / "srgb.png", icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tuple(to_rgb(tmp_path / "srgb.png")[0, 0]) == (200, 50, 50)  # sRGB already: nothing to say


def test_a_pixel_limit_is_checked_from_the_header_and_leaves_pillows_own_alone(tmp_path):
    from vqcodec.images import open_image

    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    with pytest.raises(ImageReadError, match=r"a 40x30 picture \(1,200 pixels\) is over the limit of 1,000"):
        open_image(tmp_path / "a.png", max_pixels=1000)
    before = Image.MAX_IMAGE_PIXELS
    assert open_image(tmp_path / "a.png", max_pixels=None).size == (40, 30)
    assert Image.MAX_IMAGE_PIXELS == before
