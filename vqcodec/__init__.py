"""vqcodec: a learned image codec after "Taming Transformers" (Esser, Rombach, Ommer 2021).

    data = vqcodec.compress("photo.png", quality=2)    # .vqc bytes
    image = vqcodec.decompress(data)                   # PIL.Image
    model = vqcodec.load_model()                       # the shipped model
    images = vqcodec.sample(4, seed=0)                 # unconditional generation
    rows = vqcodec.rd_curve("photo.png", codecs=("vqcodec", "avif"))  # bytes, bpp, PSNR, MS-SSIM, LPIPS
    data = vqcodec.compress("photo.png", max_bytes=3000)  # the best file within 3,000 bytes

The networks need torch; it is imported on first use, so `import vqcodec` and the container module
(vqcodec.bitstream) stay light.
"""
from __future__ import annotations

import importlib
import importlib.metadata

from .bitstream import FormatError, PixelLimitError
from .images import ConversionWarning, ImageReadError

try:
    __version__ = importlib.metadata.version("vqcodec")
except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"

# public name -> module that defines it, imported on first access (PEP 562)
_LAZY = {"compress": "codec", "decompress": "codec", "describe": "codec", "reconstruct": "codec",
         "ModelMismatch": "codec", "compress_many": "batch", "decompress_many": "batch",
         "register_pillow": "pillow_plugin", "sample": "generate", "complete": "generate", "load_model": "zoo", "Model": "zoo",
         "ModelNotFound": "zoo", "rd_curve": "bench", "compress_to_size": "codec", "TargetTooSmall": "ratecontrol"}

__all__ = ["compress", "decompress", "describe", "reconstruct", "compress_many", "decompress_many",
           "register_pillow", "load_model", "sample", "complete", "Model", "FormatError", "ModelMismatch", "PixelLimitError",
           "ModelNotFound", "ImageReadError", "ConversionWarning", "rd_curve", "compress_to_size", "TargetTooSmall",
           "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vqcodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
