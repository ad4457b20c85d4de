"""vqcodec: a learned image codec after "Taming Transformers" (Esser, Rombach, Ommer 2021).

    data = vqcodec.compress("photo.png", quality=2)    # .vqc bytes
    image = vqcodec.decompress(data)                   # PIL.Image
    model = vqcodec.load_model()                       # the shipped model
    images = vqcodec.sample(4, seed=0)                 # unconditional generation
"""
from . import bench  # vqcodec.bench: benchmarks
from .bitstream import FormatError, PixelLimitError
from .codec import ModelMismatch, compress, decompress, describe, reconstruct
from .generate import sample
from .images import ConversionWarning, ImageReadError
from .zoo import Model, ModelNotFound, load_model

__all__ = ["bench", "compress", "decompress", "describe", "reconstruct", "load_model", "sample", "Model",
           "FormatError", "ModelMismatch", "PixelLimitError", "ModelNotFound", "ImageReadError", "ConversionWarning"]
__version__ = "0.5.0"
