"""The .vqc container, versions 2 and 3 (bitstreams/FORMAT.md is the byte-by-byte specification).

    offset  size  field
    0       3     magic b"VQC"
    3       1     version = 2 (the integer-exact prior), 3 (the payload adds a hierarchy's fine grid)
    4       2     image width - 1   (uint16, big-endian)
    6       2     image height - 1  (uint16, big-endian)
    8       4     model id: first 4 bytes of the model's SHA-256 identity
    12      1     quality level (bits 0-3, 1..15) | coder (bits 4-5) | grey (bit 6) | reserved (bit 7, zero)
    13      2     grid height in tokens (uint16, big-endian)
    15      2     grid width in tokens  (uint16, big-endian)
    17      4     CRC-32 of the decoded index grids (catches a prior that desynchronised)
    21      n     range-coder payload
    21+n    4     CRC-32 of bytes 0 .. 21+n-1 (catches corruption and truncation)
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from PIL import Image

MAGIC = b"VQC"
VERSION = 2        # a coarse grid alone
FINE_VERSION = 3   # a coarse grid, then a hierarchy's fine grid (twice the resolution) in the same payload
HEADER = struct.Struct(">3sBHH4sBHHI")
TRAILER = struct.Struct(">I")
MAX_SIDE = 65536


class FormatError(ValueError):
    """The bytes are not a .vqc file this version of vqcodec can decode."""


class PixelLimitError(FormatError):
    """The file claims a picture larger than the decoder was allowed to make (max_pixels)."""


# Pillow's decompression-bomb convention: it refuses images over twice Image.MAX_IMAGE_PIXELS.
DEFAULT_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


class Coder(IntEnum):
    """How the indices were range-coded."""
    UNIFORM = 0      # log2 K bits per index, no prior
    PRIOR = 1        # the model's integer-exact transformer prior (intprior.py): same result on any machine


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    model_id: bytes      # 4 bytes
    quality: int
    coder: Coder
    grid_height: int
    grid_width: int
    grid_crc: int
    grey: bool = False   # the picture given was grey (R = G = B): it decodes to one channel
    fine: bool = False   # version 3: the payload codes a fine grid after the coarse one

    @property
    def version(self) -> int:
        return FINE_VERSION if self.fine else VERSION


def grid_checksum(indices: np.ndarray, fine: np.ndarray | None = None) -> int:
    """CRC-32 of a (quality, h, w) index grid as little-endian uint16 in C order, continued over the
    fine grid (depths, 2h, 2w) in the same way where there is one."""
    crc = zlib.crc32(np.ascontiguousarray(indices, dtype="<u2").tobytes())
    return crc if fine is None else zlib.crc32(np.ascontiguousarray(fine, dtype="<u2").tobytes(), crc)


def pack(header: Header, payload: bytes) -> bytes:
    if not (1 <= header.width <= MAX_SIDE and 1 <= header.height <= MAX_SIDE):
        raise ValueError(f"image size {header.width}x{header.height} outside 1..{MAX_SIDE} per side")
    if not 1 <= header.quality <= 15:
        raise ValueError(f"quality {header.quality} outside 1..15")
    head = HEADER.pack(MAGIC, header.version, header.width - 1, header.height - 1, header.model_id,
                       header.quality | int(header.coder) << 4 | int(header.grey) << 6, header.grid_height,
                       header.grid_width,
                       header.grid_crc)
    body = head + payload
    return body + TRAILER.pack(zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and verify a .vqc file; raises FormatError with a reason a person can act on."""
    if not data:
        raise FormatError("empty file (0 bytes), not a .vqc file")
    if len(data) < 4 or data[:3] != MAGIC:
        raise FormatError("not a .vqc file (no VQC signature)")
    if data[3] == 1:
        raise FormatError(".vqc version 1 (vqcodec 0.1, float prior that decodes only on the kind of machine "
                          f"that encoded it) is not supported: this vqcodec reads versions {VERSION} and {FINE_VERSION}; decode "
                          "the file with vqcodec 0.1 and compress it again")
    if data[3] not in (VERSION, FINE_VERSION):
        raise FormatError(f".vqc version {data[3]} is not supported (this vqcodec reads versions {VERSION} and "
                          f"{FINE_VERSION})")
    if len(data) < HEADER.size + TRAILER.size:
        raise FormatError(f"truncated .vqc file ({len(data)} bytes, the header alone takes {HEADER.size + TRAILER.size})")
    body, (crc,) = data[:-TRAILER.size], TRAILER.unpack(data[-TRAILER.size:])
    if zlib.crc32(body) != crc:
        raise FormatError("corrupted or truncated .vqc file (checksum mismatch)")
    _, _, w, h, model_id, flags, gh, gw, grid_crc = HEADER.unpack(body[:HEADER.size])
    if flags >> 7 or flags & 15 == 0 or (flags >> 4 & 3) not in {c.value for c in Coder}:
        raise FormatError(f"invalid flags byte 0x{flags:02x}")
    header = Header(w + 1, h + 1, model_id, flags & 15, Coder(flags >> 4 & 3), gh, gw, grid_crc, bool(flags >> 6 & 1),
                    data[3] == FINE_VERSION)
    return header, body[HEADER.size:]


def check_pixels(header: Header, max_pixels: int | None) -> None:
    """Refuse a header whose picture exceeds max_pixels (None: no limit), before anything is allocated."""
    if max_pixels is not None and header.width * header.height > max_pixels:
        raise PixelLimitError(f"the file claims a {header.width}x{header.height} picture "
                              f"({header.width * header.height:,} pixels), over the limit of {max_pixels:,}; "
                              "raise max_pixels (--max-pixels) if you trust it")
