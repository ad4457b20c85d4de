"""Files from strangers: whatever the bytes, decoding ends in an image or a documented error
(FormatError and its subclasses), and the work before a refusal is bounded by the file, not by the
size its header claims."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import vqcodec
from vqcodec import bitstream
from vqcodec.bitstream import Coder, FormatError, Header, PixelLimitError

VECTORS = Path(__file__).parent.parent / "bitstreams" / "vectors"


def forged(model, width, height, quality=2, coder=Coder.PRIOR, payload=b"", grid=None):
    """A file with valid CRCs claiming a picture of width x height, made by the shipped model."""
    f = model.downsample
    grid = grid or (-(-height // f), -(-width // f))
    return bitstream.pack(Header(width, height, model.model_id, quality, coder, *grid, 0), payload)


def with_payload_bit_flipped(data: bytes, bit: int) -> bytes:
    body = bytearray(data[:-4])
    body[bit // 8] ^= 1 << (bit % 8)
    return bytes(body) + struct.pack(">I", zlib.crc32(bytes(body)))


@pytest.mark.parametrize("vector,bit", [("coffee-q1-prior.vqc", 333), ("camera-gray-q2-prior.vqc", 176)])
def test_a_payload_the_coder_rejects_is_a_format_error(vector, bit):
    # One bit flipped in the payload, CRC recomputed: constriction's decoder meets a state no encoder makes.
    data = with_payload_bit_flipped((VECTORS / vector).read_bytes(), bit)
    with pytest.raises(FormatError, match="not a valid range-coder stream"):
        vqcodec.decompress(data)


def test_a_picture_over_the_pixel_limit_is_refused_before_anything_is_allocated(model):
    data = forged(model, 65536, 65536, coder=Coder.UNIFORM)
    assert len(data) == 25
    with pytest.raises(PixelLimitError, match="over the limit"):
        vqcodec.decompress(data)
    with pytest.raises(PixelLimitError):
        vqcodec.describe(data)
    with pytest.raises(PixelLimitError):
        vqcodec.decompress(forged(model, 200, 100), max_pixels=200 * 100 - 1)


def test_lifting_the_limit_still_refuses_a_payload_too_short_for_its_grid(model):
    # Uniform coding costs log2 K bits a token: the length is checked before decoding.
    for size in ((65536, 65536), (4096, 4096)):
        data = forged(model, *size, coder=Coder.UNIFORM)
        with pytest.raises(FormatError, match="too short"):
            vqcodec.decompress(data, max_pixels=None)
        with pytest.raises(FormatError, match="too short"):
            vqcodec.describe(data, max_pixels=None)


@pytest.mark.timeout(120)
def test_a_prior_coded_file_stops_when_its_payload_runs_out(model):
    # Before: the whole 4096 x 4096 grid (65,536 positions) was decoded before the grid CRC was checked.
    for payload in (b"", bytes(range(40))):
        with pytest.raises(FormatError, match="ran out"):
            vqcodec.decompress(forged(model, 4096, 4096, payload=payload), max_pixels=None)


def test_a_grid_that_contradicts_the_picture_is_refused_by_info(model):
    data = forged(model, 64, 64, grid=(9, 4))
    with pytest.raises(FormatError, match="does not match"):
        vqcodec.describe(data)


def test_decompress_takes_bytes_paths_and_file_objects():
    path = VECTORS / "coffee-q1-prior.vqc"
    data = path.read_bytes()
    expected = np.asarray(vqcodec.decompress(data))
    for source in (path, str(path), io.BytesIO(data), bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(np.asarray(vqcodec.decompress(source)), expected)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(np.asarray(vqcodec.decompress(f)), expected)
    assert vqcodec.describe(path)["file_bytes"] == len(data)
    with pytest.raises(TypeError, match="binary"):
        vqcodec.decompress(io.StringIO("VQC"))
    with pytest.raises(TypeError):
        vqcodec.decompress(12)


def test_a_uniform_payload_the_coder_rejects_is_a_format_error(model):
    # The long fuzzing run found it: a range decoder's first words can lie outside any model's range.
    data = forged(model, 64, 32, quality=1, coder=Coder.UNIFORM, payload=b"\xff" * 60)
    with pytest.raises(FormatError, match="not a valid range-coder stream"):
        vqcodec.decompress(data)
