"""A Pillow plugin for .vqc files, opt-in because decoding needs torch:

    import vqcodec
    from PIL import Image

    vqcodec.register_pillow()
    im = Image.open("photo.vqc")          # reads the header only: size and mode are known at once
    im.load()                             # decodes (the prior's walk and the CNN decoder)
    im.save("copy.vqc", quality=80)       # encodes; quality is Pillow's 0-100, mapped to the levels
    im.save("copy.vqc", level=2)          # or the model's level, 1 .. its top level

Save options: quality (Pillow's 0-100: level_for's bands) or level, model (name or folder), rd_lambda; or
max_bytes / target_bpp for the best file within a size (`im.save("small.vqc", max_bytes=2000)`). Other
options (optimize, progressive, ...) are ignored with a warning. On open, info["quality"] is the file's level. Open accepts the decoder's
max_pixels through PIL.Image.MAX_IMAGE_PIXELS, as for any format Pillow reads.
"""
from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from . import bitstream
from .bitstream import FormatError

FORMAT = "VQC"
EXTENSION = ".vqc"
MIME = "image/x-vqc"


def _accept(prefix: bytes) -> bool:
    return prefix[:3] == bitstream.MAGIC


class VqcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "vqcodec learned image (VQ-GAN tokens, transformer prior, range coding)"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            header, _ = bitstream.unpack(data)
        except FormatError as e:
            raise SyntaxError(str(e)) from None  # Pillow's way of saying "not this format"
        self._vqc = data
        self._size = (header.width, header.height)
        self._mode = "L" if header.grey else "RGB"
        self.info["quality"] = header.quality
        self.info["model_id"] = header.model_id.hex()
        self.tile = []

    def load(self):
        if self._im is None and getattr(self, "_vqc", None) is not None:
            from .codec import decompress

            # Image.open has applied Pillow's decompression-bomb check (MAX_IMAGE_PIXELS) to the size.
            decoded = decompress(self._vqc, max_pixels=None)
            self.load_prepare()
            self.frombytes(decoded.tobytes())
            self._vqc = None
            if self._exclusive_fp and self._close_exclusive_fp_after_loading:  # as ImageFile.load does
                self.fp.close()
            self.fp = None
        return Image.Image.load(self)


SAVE_OPTIONS = {"quality", "level", "model", "rd_lambda", "max_bytes", "target_bpp"}


def level_for(quality: int, levels: int) -> int:
    """Pillow's quality, 0 (smallest) to 100, as one of a model's levels 1..levels in equal bands
    (six levels: 0-16, 17-33, 34-50, 51-67, 68-84, 85-100)."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise ValueError(f"quality is Pillow's 0 to 100, got {quality!r}; level=1..{levels} names a level directly")
    return min(levels, 1 + quality * levels // 101)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    import warnings

    from .codec import compress
    from .defaults import DEFAULT_RD_LAMBDA
    from .zoo import resolve_model

    options = im.encoderinfo
    ignored = sorted(set(options) - SAVE_OPTIONS)
    if ignored:
        warnings.warn(f"vqcodec ignores the save option(s) {', '.join(ignored)}", UserWarning, stacklevel=3)
    if options.get("quality") is not None and options.get("level") is not None:
        raise ValueError("give quality (Pillow's 0-100) or level, not both")
    model = resolve_model(options.get("model"))
    level = options.get("level")
    if options.get("quality") is not None:
        level = level_for(options["quality"], model.levels)
    data = compress(im, quality=level, model=model, rd_lambda=options.get("rd_lambda", DEFAULT_RD_LAMBDA),
                    max_bytes=options.get("max_bytes"), target_bpp=options.get("target_bpp"))
    fp.write(data)


def register_pillow() -> None:
    """Teach Pillow to open and save .vqc files (Image.open, Image.save, registered_extensions)."""
    Image.register_open(FORMAT, VqcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
