"""The .vqc container: small header, every corruption and truncation detected, clear refusals."""
import pytest

from vqcodec import bitstream
from vqcodec.bitstream import Coder, FormatError, Header

HEADER = Header(width=768, height=512, model_id=b"\x01\x02\x03\x04", quality=3, coder=Coder.PRIOR,
                grid_height=32, grid_width=48, grid_crc=0xDEADBEEF)


def test_round_trip_and_overhead():
    data = bitstream.pack(HEADER, b"payload-bytes")
    header, payload = bitstream.unpack(data)
    assert header == HEADER and payload == b"payload-bytes"
    assert len(data) - len(payload) <= 32


def test_every_flipped_bit_is_detected():
    data = bitstream.pack(HEADER, bytes(range(40)))
    for i in range(len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(FormatError):
                bitstream.unpack(bytes(bad))


def test_every_truncation_is_detected():
    data = bitstream.pack(HEADER, bytes(range(40)))
    for n in range(len(data)):
        with pytest.raises(FormatError):
            bitstream.unpack(data[:n])


def test_other_files_and_versions_are_refused_by_name():
    with pytest.raises(FormatError, match="not a .vqc file"):
        bitstream.unpack(b"\x89PNG\r\n\x1a\n" + bytes(40))
    future = bytearray(bitstream.pack(HEADER, b"x"))
    future[3] = 9
    with pytest.raises(FormatError, match="version 9"):
        bitstream.unpack(bytes(future))


def test_float_prior_files_of_version_1_get_a_clear_refusal():
    old = bytearray(bitstream.pack(HEADER, b"x"))
    old[3] = 1
    with pytest.raises(FormatError, match="version 1 .*float prior.*vqcodec 0.1"):
        bitstream.unpack(bytes(old))


@pytest.mark.parametrize("w,h", [(0, 5), (5, 0), (65537, 1)])
def test_sizes_outside_the_format_are_refused(w, h):
    with pytest.raises(ValueError):
        bitstream.pack(Header(w, h, b"abcd", 1, Coder.UNIFORM, 1, 1, 0), b"")


def test_the_grey_flag_round_trips_and_the_last_flag_bit_stays_reserved():
    import dataclasses
    import zlib

    grey = dataclasses.replace(HEADER, grey=True)
    data = bitstream.pack(grey, b"payload")
    assert bitstream.unpack(data)[0].grey and not bitstream.unpack(bitstream.pack(HEADER, b"payload"))[0].grey
    assert data[12] == 3 | 1 << 4 | 1 << 6
    bad = bytearray(data[:-4])
    bad[12] |= 0x80
    with pytest.raises(FormatError, match="invalid flags byte 0xd3"):
        bitstream.unpack(bytes(bad) + zlib.crc32(bytes(bad)).to_bytes(4, "big"))
