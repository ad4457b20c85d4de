"""compress / decompress: image <-> TokenGrid <-> range-coded payload <-> .vqc bytes."""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, replace
from typing import BinaryIO, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import bitstream
from .bitstream import DEFAULT_MAX_PIXELS, Coder, FormatError, Header, check_pixels
from .coding import RangeDecoder, RangeEncoder, payload_too_short
from .defaults import DEFAULT_RD_LAMBDA
from .images import ImageLike, to_rgb
from .intfineprior import decode_fine, encode_fine, fine_bits
from .intprior import IntPrior
from .ratecontrol import LADDER, admitted, budget, fit
from .search import Choice, choose_codes, choose_codes_for
from .walk import TokenGrid, group_frequencies, tile_groups, walk_prior
from .tokenizer import to_pixels, to_unit_range
from .zoo import RETIRED_MODELS, Model, find_model_by_id, load_model, resolve_model


class ModelMismatch(FormatError):
    """The file was made by another model than the one asked to decode it."""


VqcSource = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]


def read_source(source: VqcSource) -> bytes:
    """The bytes of a .vqc file given as bytes, a path or a binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return f.read()
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("a .vqc file object must be opened in binary mode")
        return bytes(data)
    raise TypeError(f"expected .vqc bytes, a path or a binary file object, got {type(source).__name__}")


def _code_tokens(encoder: RangeEncoder, grid: TokenGrid, prior: IntPrior | None) -> None:
    if prior is None:
        encoder.uniform(grid.indices.ravel(), grid.codebook_size)
        return
    for group in tile_groups(*grid.shape, prior.cfg.window):
        encoder.categorical(*group_frequencies(prior, grid, group))


def encode_tokens(grid: TokenGrid, prior: IntPrior | None) -> bytes:
    """Range-code a token grid under the prior's integer frequencies; prior=None codes uniformly."""
    encoder = RangeEncoder()
    _code_tokens(encoder, grid, prior)
    return encoder.payload()


def _decode_coarse(decoder: RangeDecoder, quality: int, shape: tuple[int, int], codebook_size: int,
                   prior: IntPrior | None) -> TokenGrid:
    h, w = shape
    if prior is None:
        return TokenGrid(decoder.uniform(quality * h * w, codebook_size).reshape(quality, h, w), codebook_size)
    return TokenGrid(walk_prior(prior, quality, h, w, decoder.categorical), codebook_size)


def decode_tokens(payload: bytes, quality: int, shape: tuple[int, int], codebook_size: int,
                  prior: IntPrior | None) -> TokenGrid:
    """Inverse of encode_tokens; FormatError as soon as the payload proves too short or invalid."""
    return _decode_coarse(RangeDecoder(payload), quality, shape, codebook_size, prior)


def _payload(grid: TokenGrid, m: Model, use_prior: bool) -> bytes:
    """The coarse grid under the transformer prior, then a fine grid under the fine grid's prior (or both
    uniformly), in one range-coded payload."""
    encoder = RangeEncoder()
    _code_tokens(encoder, TokenGrid(grid.indices, grid.codebook_size), m.prior if use_prior else None)
    if grid.fine is not None and use_prior:
        encode_fine(m.fine_prior, grid.indices, grid.fine, encoder)
    elif grid.fine is not None:
        encoder.uniform(grid.fine.ravel(), grid.fine_codebook_size)
    return encoder.payload()


def _decode_payload(payload: bytes, header: Header, m: Model) -> TokenGrid:
    """Inverse of _payload for the grid the header describes."""
    decoder, use_prior = RangeDecoder(payload), header.coder == Coder.PRIOR
    shape, coarse_quality = (header.grid_height, header.grid_width), min(header.quality, m.coarse_levels)
    grid = _decode_coarse(decoder, coarse_quality, shape, m.codebook_size, m.prior if use_prior else None)
    if not header.fine:
        return grid
    fine_quality, (h, w) = header.quality - m.coarse_levels, shape
    if use_prior:
        fine = decode_fine(m.fine_prior, grid.indices, fine_quality, decoder.categorical)
    else:
        fine = decoder.uniform(fine_quality * 4 * h * w, m.fine_codebook_size).reshape(fine_quality, 2 * h, 2 * w)
    return TokenGrid(grid.indices, grid.codebook_size, fine, m.fine_codebook_size)


def _to_tensor(rgb: np.ndarray, f: int, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H', W') in [-1, 1], edge-padded to multiples of f."""
    x = to_unit_range(torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].to(device))
    H, W = rgb.shape[:2]
    return F.pad(x, (0, -W % f, 0, -H % f), mode="replicate")


def _to_image(x: torch.Tensor, width: int, height: int) -> Image.Image:
    """(1, 3, H', W') in [-1, 1] -> RGB image cropped to width x height."""
    a = to_pixels(x[0, :, :height, :width]).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(a, "RGB")


def is_grey(rgb: np.ndarray) -> bool:
    """Whether a picture is grey (R = G = B everywhere): the file then says so and decodes to mode L."""
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def as_given(image: Image.Image, grey: bool) -> Image.Image:
    """The decoded picture in the kind it was given: grey pictures as mode L (the decoder's luma)."""
    return image.convert("L") if grey else image


def _check_rd_lambda(rd_lambda: float) -> float:
    if isinstance(rd_lambda, bool) or not isinstance(rd_lambda, (int, float)) or not 0 <= rd_lambda < math.inf:
        raise ValueError(f"rd_lambda must be a finite number >= 0, got {rd_lambda!r}")
    return float(rd_lambda)


def _latent(rgb: np.ndarray, m: Model) -> torch.Tensor:
    """The encoder's latent (1, D, h, w) of an edge-padded picture."""
    return m.tokenizer.latent(_to_tensor(rgb, m.downsample, m.device))


def _greedy(z: torch.Tensor, quality: int, m: Model) -> np.ndarray:
    """The nearest code at each depth in turn (q, h, w): the tokenizer's own quantization."""
    return m.tokenizer.quantize_latent(z, quality)[0].cpu().numpy()


def tokenize(image: ImageLike, quality: int | None = None, model: Model | str | None = None,
             device: str | None = None, rd_lambda: float = DEFAULT_RD_LAMBDA) -> TokenGrid:
    """The token grid the codec stores for an image at a quality level (search.py): codes chosen for
    closeness to the encoder's latent plus rd_lambda times their bits under the prior (0: closeness only).
    Above a hierarchy's coarse levels the grid adds the nearest fine codes for what the coarse codes miss."""
    m = resolve_model(model, device)
    quality = m.check_quality(quality)
    rd_lambda = _check_rd_lambda(rd_lambda)
    if quality <= m.coarse_levels:
        z = _latent(to_rgb(image), m)
        codes = choose_codes(z[0], _greedy(z, quality, m), m.tokenizer.quantizer.codebooks.detach(), m.prior, rd_lambda)
        return TokenGrid(codes, m.codebook_size)
    x = _to_tensor(to_rgb(image), m.downsample, m.device)
    features, z = m.hierarchy.coarse(x)
    codes = choose_codes(z[0], _greedy(z, m.coarse_levels, m), m.tokenizer.quantizer.codebooks.detach(), m.prior,
                         rd_lambda)
    fine = m.hierarchy.fine_indices(features, x, torch.from_numpy(codes)[None].to(m.device))
    return TokenGrid(codes, m.codebook_size, fine[0, :quality - m.coarse_levels].cpu().numpy(), m.fine_codebook_size)


def detokenize(grid: TokenGrid, width: int, height: int, model: Model | str | None = None,
               device: str | None = None) -> Image.Image:
    """The picture a token grid stands for, cropped to width x height."""
    m = resolve_model(model, device)
    indices = torch.from_numpy(grid.indices)[None].to(m.device)
    if grid.fine is None:
        return _to_image(m.tokenizer.decode(indices), width, height)
    if m.hierarchy is None:
        raise ValueError(f"the grid has a fine grid, which model {m.name} does not have")
    return _to_image(m.hierarchy.decode_indices(indices, torch.from_numpy(grid.fine)[None].to(m.device)), width, height)


def reconstruct(image: ImageLike, quality: int | None = None, model: Model | str | None = None,
                device: str | None = None, rd_lambda: float = DEFAULT_RD_LAMBDA) -> Image.Image:
    """What decompress(compress(image)) returns (for the same quality and rd_lambda), without coding."""
    rgb = to_rgb(image)
    grid = tokenize(rgb, quality, model, device, rd_lambda)
    return as_given(detokenize(grid, rgb.shape[1], rgb.shape[0], model, device), is_grey(rgb))


def _file(grid: TokenGrid, rgb: np.ndarray, m: Model, use_prior: bool) -> bytes:
    header = Header(rgb.shape[1], rgb.shape[0], m.model_id, grid.quality, Coder.PRIOR if use_prior else Coder.UNIFORM,
                    *grid.shape, bitstream.grid_checksum(grid.indices, grid.fine), is_grey(rgb), grid.fine is not None)
    return bitstream.pack(header, _payload(grid, m, use_prior))


def compress(image: ImageLike, quality: int | None = None, model: Model | str | None = None,
             device: str | None = None, coder: str = "prior", rd_lambda: float = DEFAULT_RD_LAMBDA,
             max_bytes: int | None = None, target_bpp: float | None = None) -> bytes:
    """Encode an image (path, PIL image or numpy array) into .vqc bytes.
    coder: "prior" (the transformer prior) or "uniform" (log2 K bits per index, for reference).
    rd_lambda: what a bit is worth against the latent's squared error when the encoder picks codes
    (search.py): larger gives smaller files, 0 picks for closeness alone. The uniform coder prices every
    code alike, so there it has no effect.
    max_bytes / target_bpp: instead of quality and rd_lambda, the best file no larger than this many bytes
    (or bits per pixel), chosen over the levels and rd_lambda (compress_to_size)."""
    if max_bytes is not None or target_bpp is not None:
        if quality is not None or rd_lambda != DEFAULT_RD_LAMBDA or coder != "prior":
            raise ValueError("max_bytes and target_bpp choose the quality and rd_lambda themselves, with the "
                             "prior coder: give neither quality, rd_lambda nor coder with them")
        return compress_to_size(image, max_bytes, target_bpp, model, device).data
    if coder not in ("prior", "uniform"):
        raise ValueError(f"coder must be 'prior' or 'uniform', got {coder!r}")
    m = resolve_model(model, device)
    rgb = to_rgb(image)
    use_prior = coder == "prior"
    rd_lambda = _check_rd_lambda(rd_lambda)
    grid = tokenize(rgb, quality, m, device, rd_lambda if use_prior else 0.0)
    return _file(grid, rgb, m, use_prior)


@dataclass(frozen=True)
class SizedFile:
    """A file made to fit a budget, and the encoder settings that made it."""
    data: bytes
    quality: int
    rd_lambda: float


def compress_to_size(image: ImageLike, max_bytes: int | None = None, target_bpp: float | None = None,
                     model: Model | str | None = None, device: str | None = None) -> SizedFile:
    """The best file no larger than max_bytes, or than target_bpp bits per pixel (ratecontrol.py): the
    highest quality level that fits, at the smallest rd_lambda of ratecontrol.LADDER that fits there.
    Raises ratecontrol.TargetTooSmall (a ValueError) when even the smallest file is larger."""
    m = resolve_model(model, device)
    rgb = to_rgb(image)
    height, width = rgb.shape[:2]
    limit = budget(width, height, max_bytes, target_bpp)
    if limit is None:
        raise ValueError("give max_bytes or target_bpp")
    x = _to_tensor(rgb, m.downsample, m.device)
    features, z = m.hierarchy.coarse(x) if m.hierarchy else (None, m.tokenizer.latent(x))
    books = m.tokenizer.quantizer.codebooks.detach()

    @functools.cache
    def candidates(q: int) -> list[Choice]:
        if q > m.coarse_levels:  # a hierarchy's coarse candidates, each with its fine grid
            return [replace(c, fine=fine[:q - m.coarse_levels], depth_bits=c.depth_bits + bits[:q - m.coarse_levels])
                    for c, (fine, bits) in zip(candidates(m.coarse_levels), fine_grids())]
        below = choose_codes_for(z[0], _greedy(z, q - 1, m), books, m.prior, (0.0,))[0].sq_error if q > 1 \
            else float((z.double() ** 2).sum())
        return admitted(choose_codes_for(z[0], _greedy(z, q, m), books, m.prior, LADDER), below)

    @functools.cache
    def fine_grids() -> list[tuple[np.ndarray, tuple]]:
        """(full-depth fine grid, its bits per depth) over each coarse candidate of the top coarse level."""
        out = []
        for c in candidates(m.coarse_levels):
            fine = m.hierarchy.fine_indices(features, x, torch.from_numpy(c.grid)[None].to(m.device))[0].cpu().numpy()
            out.append((fine, tuple(fine_bits(m.fine_prior, c.grid, fine))))
        return out

    def grid_of(choice: Choice) -> TokenGrid:
        return TokenGrid(choice.grid, m.codebook_size, choice.fine, m.fine_codebook_size)

    choice, data = fit(limit, m.levels, candidates, lambda c: _file(grid_of(c), rgb, m, True), first=m.default_quality)
    return SizedFile(data, grid_of(choice).quality, choice.rd_lambda)


def _decoding_model(header: Header, model: Model | str | None, device: str | None) -> Model:
    if model is None:
        name = find_model_by_id(header.model_id)
        if name is None and header.model_id in RETIRED_MODELS:
            raise ModelMismatch(f"this file was made by model {header.model_id.hex()} "
                                f"({RETIRED_MODELS[header.model_id]}), which this version no longer ships: decode "
                                "it with that version, or pass that model's folder as the model")
        if name is None:
            raise ModelMismatch(f"this file was made by model {header.model_id.hex()}, which is not a shipped "
                                "model: pass the model that made it")
        model = name
    m = resolve_model(model, device)
    if not m.decodes_files_of(header.model_id):
        raise ModelMismatch(f"this file was made by model {header.model_id.hex()}, but the model given is "
                            f"{m.name} ({m.model_id.hex()})")
    return m


def _check_grid(header: Header, payload: bytes, m: Model) -> tuple[int, int]:
    """The grid the header's picture needs under model m; refuses a header that contradicts it."""
    if header.quality > m.levels:
        raise FormatError(f"quality {header.quality} exceeds model {m.name}'s {m.levels} levels")
    if header.fine != (header.quality > m.coarse_levels):
        raise FormatError(f"a version {header.version} file of quality {header.quality} does not match model "
                          f"{m.name}, whose levels above {m.coarse_levels} store a fine grid")
    expected_grid = m.grid_shape(header.width, header.height)
    if (header.grid_height, header.grid_width) != expected_grid:
        raise FormatError(f"grid {header.grid_height}x{header.grid_width} does not match a "
                          f"{header.width}x{header.height} image")
    coarse_tokens = min(header.quality, m.coarse_levels) * expected_grid[0] * expected_grid[1]
    fine_tokens = max(0, header.quality - m.coarse_levels) * 4 * expected_grid[0] * expected_grid[1]
    if header.coder == Coder.UNIFORM and payload_too_short(
            payload, coarse_tokens * math.log2(m.codebook_size) + fine_tokens * math.log2(max(m.fine_codebook_size, 1))):
        raise FormatError(f"payload of {len(payload)} bytes is too short for its "
                          f"{header.quality}x{expected_grid[0]}x{expected_grid[1]} grid")
    return expected_grid


def decode_grid(source: VqcSource, model: Model | str | None = None, device: str | None = None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[Header, TokenGrid, Model]:
    """The header and the verified token grid of a .vqc file, and the model that decodes it."""
    header, payload = bitstream.unpack(read_source(source))
    check_pixels(header, max_pixels)
    m = _decoding_model(header, model, device)
    _check_grid(header, payload, m)
    grid = _decode_payload(payload, header, m)
    if bitstream.grid_checksum(grid.indices, grid.fine) != header.grid_crc:
        raise FormatError("decoded indices fail their checksum: the payload does not match this model's prior")
    return header, grid, m


def decompress(source: VqcSource, model: Model | str | None = None, device: str | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a .vqc file (bytes, a path or a binary file object) into an RGB image (mode L for a grey one).
    max_pixels: refuse files that claim a larger picture (PixelLimitError); None lifts the limit.
    Raises FormatError (or its subclasses ModelMismatch, PixelLimitError) for any file that is not,
    or no longer, decodable."""
    header, grid, m = decode_grid(source, model, device, max_pixels)
    return as_given(detokenize(grid, header.width, header.height, m, device), header.grey)


def describe(source: VqcSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict:
    """Header fields and sizes of a .vqc file, checked as far as is possible without decoding it
    (CRC, pixel limit, the grid against the picture and the model, a uniform payload's length)."""
    data = read_source(source)
    header, payload = bitstream.unpack(data)
    check_pixels(header, max_pixels)
    name = find_model_by_id(header.model_id)  # the shipped model that decodes it
    codebook_size = made_by = None
    tokens = None if header.fine else header.quality * header.grid_height * header.grid_width
    if name is not None:
        m = load_model(name)
        _check_grid(header, payload, m)
        codebook_size = m.codebook_size
        made_by = name if m.model_id == header.model_id else m.reads_files_of[header.model_id]
        tokens = (min(header.quality, m.coarse_levels)
                  + 4 * max(0, header.quality - m.coarse_levels)) * header.grid_height * header.grid_width
    return {
        "version": header.version, "width": header.width, "height": header.height,
        "model_id": header.model_id.hex(), "made_by": made_by, "model": name,
        "retired": RETIRED_MODELS.get(header.model_id),  # where a model no longer shipped can be found
        "quality": header.quality, "grey": header.grey,
        "coder": header.coder.name.lower(), "grid": [header.grid_height, header.grid_width],
        "tokens": tokens, "codebook_size": codebook_size,
        "payload_bytes": len(payload), "file_bytes": len(data),
        "bpp": 8 * len(data) / (header.width * header.height),
    }
