"""compress / decompress: image <-> TokenGrid <-> range-coded payload <-> .vqc bytes."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import bitstream
from .bitstream import Coder, FormatError, Header
from .coding import TokenGrid, decode_tokens, encode_tokens
from .images import ImageLike, to_rgb
from .search import DEFAULT_RD_LAMBDA, choose_codes
from .zoo import RETIRED_MODELS, Model, find_model_by_id, load_model


class ModelMismatch(FormatError):
    """The file was made by another model than the one asked to decode it."""


def _model(model: Model | str | None, device: str) -> Model:
    return model if isinstance(model, Model) else load_model(model, device)


def _check_quality(model: Model, quality: int | None) -> int:
    quality = model.default_quality if quality is None else quality
    if not isinstance(quality, int) or not 1 <= quality <= model.levels:
        raise ValueError(f"quality must be an integer from 1 to {model.levels} for model {model.name}, got {quality!r}")
    return quality


def _to_tensor(rgb: np.ndarray, f: int, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H', W') in [-1, 1], edge-padded to multiples of f."""
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
    H, W = rgb.shape[:2]
    return F.pad(x, (0, -W % f, 0, -H % f), mode="replicate")


def _to_image(x: torch.Tensor, width: int, height: int) -> Image.Image:
    """(1, 3, H', W') in [-1, 1] -> RGB image cropped to width x height."""
    a = ((x[0, :, :height, :width].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(a, "RGB")


def _check_rd_lambda(rd_lambda: float) -> float:
    if isinstance(rd_lambda, bool) or not isinstance(rd_lambda, (int, float)) or not 0 <= rd_lambda < math.inf:
        raise ValueError(f"rd_lambda must be a finite number >= 0, got {rd_lambda!r}")
    return float(rd_lambda)


def tokenize(image: ImageLike, quality: int | None = None, model: Model | str | None = None,
             device: str = "cpu", rd_lambda: float = DEFAULT_RD_LAMBDA) -> TokenGrid:
    """The token grid the codec stores for an image at a quality level (search.py): codes chosen for
    closeness to the encoder's latent plus rd_lambda times their bits under the prior (0: closeness only)."""
    m = _model(model, device)
    quality = _check_quality(m, quality)
    rd_lambda = _check_rd_lambda(rd_lambda)
    x = _to_tensor(to_rgb(image), m.downsample, m.device)
    z = m.tokenizer.latent(x)
    greedy = m.tokenizer.quantize_latent(z, quality)[0].cpu().numpy()
    codes = choose_codes(z[0], greedy, m.tokenizer.quantizer.codebooks.detach(), m.prior, rd_lambda)
    return TokenGrid(codes, m.codebook_size)


def detokenize(grid: TokenGrid, width: int, height: int, model: Model | str | None = None,
               device: str = "cpu") -> Image.Image:
    """The picture a token grid stands for, cropped to width x height."""
    m = _model(model, device)
    indices = torch.from_numpy(grid.indices)[None].to(m.device)
    return _to_image(m.tokenizer.decode(indices), width, height)


def reconstruct(image: ImageLike, quality: int | None = None, model: Model | str | None = None,
                device: str = "cpu", rd_lambda: float = DEFAULT_RD_LAMBDA) -> Image.Image:
    """What decompress(compress(image)) returns (for the same quality and rd_lambda), without coding."""
    rgb = to_rgb(image)
    grid = tokenize(rgb, quality, model, device, rd_lambda)
    return detokenize(grid, rgb.shape[1], rgb.shape[0], model, device)


def compress(image: ImageLike, quality: int | None = None, model: Model | str | None = None,
             device: str = "cpu", coder: str = "prior", rd_lambda: float = DEFAULT_RD_LAMBDA) -> bytes:
    """Encode an image (path, PIL image or numpy array) into .vqc bytes.
    coder: "prior" (the transformer prior) or "uniform" (log2 K bits per index, for reference).
    rd_lambda: what a bit is worth against the latent's squared error when the encoder picks codes
    (search.py): larger gives smaller files, 0 picks for closeness alone. The uniform coder prices every
    code alike, so there it has no effect."""
    if coder not in ("prior", "uniform"):
        raise ValueError(f"coder must be 'prior' or 'uniform', got {coder!r}")
    m = _model(model, device)
    rgb = to_rgb(image)
    use_prior = coder == "prior"
    rd_lambda = _check_rd_lambda(rd_lambda)
    grid = tokenize(rgb, quality, m, device, rd_lambda if use_prior else 0.0)
    payload = encode_tokens(grid, m.prior if use_prior else None)
    header = Header(rgb.shape[1], rgb.shape[0], m.model_id, grid.quality,
                    Coder.PRIOR if use_prior else Coder.UNIFORM, *grid.shape,
                    bitstream.grid_checksum(grid.indices))
    return bitstream.pack(header, payload)


def _decoding_model(header: Header, model: Model | str | None, device: str) -> Model:
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
    m = _model(model, device)
    if not m.reads(header.model_id):
        raise ModelMismatch(f"this file was made by model {header.model_id.hex()}, but the model given is "
                            f"{m.name} ({m.model_id.hex()})")
    return m


def decode_grid(data: bytes, model: Model | str | None = None,
                device: str = "cpu") -> tuple[Header, TokenGrid, Model]:
    """The header and the verified token grid of .vqc bytes, and the model that decodes them."""
    header, payload = bitstream.unpack(bytes(data))
    m = _decoding_model(header, model, device)
    if header.quality > m.levels:
        raise FormatError(f"quality {header.quality} exceeds model {m.name}'s {m.levels} levels")
    expected_grid = (-(-header.height // m.downsample), -(-header.width // m.downsample))
    if (header.grid_height, header.grid_width) != expected_grid:
        raise FormatError(f"grid {header.grid_height}x{header.grid_width} does not match a "
                          f"{header.width}x{header.height} image")
    prior = m.prior if header.coder == Coder.PRIOR else None
    grid = decode_tokens(payload, header.quality, expected_grid, m.codebook_size, prior)
    if bitstream.grid_checksum(grid.indices) != header.grid_crc:
        raise FormatError("decoded indices fail their checksum: the payload does not match this model's prior")
    return header, grid, m


def decompress(data: bytes, model: Model | str | None = None, device: str = "cpu") -> Image.Image:
    """Decode .vqc bytes into an RGB image. Raises FormatError (or its subclass ModelMismatch) for
    files that are not, or no longer, decodable."""
    header, grid, m = decode_grid(data, model, device)
    return detokenize(grid, header.width, header.height, m, device)
