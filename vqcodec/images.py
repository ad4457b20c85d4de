"""Turning what users hand us (paths, PIL images, numpy arrays) into 8-bit RGB, saying what was lost."""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageLike = Union[str, Path, Image.Image, np.ndarray]


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".gif"}


def image_files(folder: str | Path) -> list[Path]:
    """Image files under a folder, recursively, by suffix, sorted."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images under {folder}")
    return files


class ConversionWarning(UserWarning):
    """Information in the input (alpha, bit depth) that the codec does not keep."""


class ImageReadError(ValueError):
    pass


def _sixteen_bit(im: Image.Image) -> bool:
    """Whether Pillow is about to read 16-bit samples into an 8-bit mode (it does so for RGB(A) PNG)."""
    return not im.mode.startswith("I") and any(";16" in str(tile[3]) for tile in im.tile)


PILLOW_LIMIT = "pillow"  # open_image's max_pixels: Pillow's own decompression-bomb limit


def open_image(path: str | Path | BinaryIO, name: str | None = None,
               max_pixels: int | None | str = PILLOW_LIMIT) -> Image.Image:
    """Read an image file (a path or a binary file object, called `name` in errors) into memory, its
    first frame, and close it. max_pixels: refuse a larger picture, read from the file's header before
    its pixels (None: no limit; PILLOW_LIMIT: Pillow's PIL.Image.MAX_IMAGE_PIXELS). What the read loses is
    noted in the image's info for to_rgb to report."""
    name = name or str(path)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        if max_pixels != PILLOW_LIMIT:
            Image.MAX_IMAGE_PIXELS = None  # this call's own limit replaces Pillow's, below
        with Image.open(path) as im:
            if max_pixels not in (None, PILLOW_LIMIT) and im.width * im.height > max_pixels:
                raise ImageReadError(f"{name}: a {im.width}x{im.height} picture ({im.width * im.height:,} pixels) is "
                                     f"over the limit of {max_pixels:,}; raise it with --max-pixels if you trust it")
            lost = {"vqcodec_frames": getattr(im, "n_frames", 1), "vqcodec_16bit": _sixteen_bit(im)}
            im.load()
            image = im.copy()
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a folder (-o DIR codes every file under folders)") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{name}: {e} Raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file.") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageReadError(f"{name}: not a readable image ({e})") from None
    except ValueError as e:
        if isinstance(e, ImageReadError):
            raise
        raise ImageReadError(f"{name}: not a readable image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    image.info.update(lost)
    return image


def _from_array(a: np.ndarray) -> Image.Image:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ImageReadError(f"array of shape {a.shape} is not an image: expected (H, W), (H, W, 3) or (H, W, 4)")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        warnings.warn("16-bit samples reduced to 8 bits", ConversionWarning, stacklevel=3)
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageReadError("float array holds NaN or infinite values")
        if a.min(initial=0.0) < 0 or a.max(initial=0.0) > 1:
            raise ImageReadError(f"float arrays must hold values in [0, 1], got {a.min():.4g}..{a.max():.4g} "
                                 "(for 0..255 data pass a uint8 array)")
        a = (a * 255 + 0.5).astype(np.uint8)
    else:
        raise ImageReadError(f"unsupported array dtype {a.dtype}: use uint8, uint16 or float in [0, 1]")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[a.shape[2]]
    return Image.fromarray(a[..., 0] if mode == "L" else a, mode)


def _to_srgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """An image with an embedded ICC profile, its colours converted to sRGB (the codec's and every
    viewer's assumption for untagged pixels); what was done, unless the profile was sRGB already."""
    icc = image.info["icc_profile"]
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile).strip()
        if "srgb" in description.lower():
            return image, []
        mode = "RGBA" if "A" in image.getbands() else "RGB"
        converted = ImageCms.profileToProfile(image.convert(mode) if image.mode not in ("RGB", "RGBA") else image,
                                              profile, ImageCms.createProfile("sRGB"), outputMode=mode)
        return converted, [f"colours converted from the ICC profile '{description}' to sRGB"]
    except Exception as e:  # noqa: BLE001 - no littlecms, or a profile it cannot read: said, not fatal
        return image, [f"ICC profile ignored ({type(e).__name__}: {e}); pixels read as sRGB"]


def to_rgb(image: ImageLike, colour_manage: bool = True) -> np.ndarray:
    """Any supported image as a (H, W, 3) uint8 array, turned upright by its EXIF orientation, its colours
    converted to sRGB from an embedded ICC profile (colour_manage=False keeps the stored values: training
    and its held-out scores read pictures so, which keeps them comparable with the runs before). Whatever
    is lost or converted on the way (alpha, bit depth, CMYK, a profile, later frames) is reported once as a
    ConversionWarning."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 \
            and image.size:
        return image  # already what the codec takes: no conversion, no copy
    if isinstance(image, (str, Path)):
        image = open_image(image)
    elif isinstance(image, np.ndarray):
        image = _from_array(image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"expected a path, PIL image or numpy array, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise ImageReadError("empty image")
    dropped = []
    frames = image.info.get("vqcodec_frames", getattr(image, "n_frames", 1))
    if frames > 1:
        dropped.append(f"first frame of {frames} kept")
    if image.info.get("vqcodec_16bit"):
        dropped.append("16-bit samples reduced to 8 bits")
    if image.mode == "CMYK":
        dropped.append("CMYK converted to RGB")
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(image)
        if image.mode == "F":
            a = np.clip(a, 0, 255)
            dropped.append("floating-point samples rounded to 8 bits")
        elif image.mode.startswith("I;16") or a.max(initial=0) > 255:
            a = np.clip(a, 0, 65535).astype(np.float64) / 257.0
            dropped.append("16-bit samples reduced to 8 bits")
        image = Image.fromarray(np.round(a).astype(np.uint8), "L")
    if "A" in image.getbands() or "transparency" in image.info:
        dropped.append("alpha channel dropped")
    if colour_manage and image.info.get("icc_profile"):
        image, said = _to_srgb(image)
        dropped += said
    if dropped:
        warnings.warn("; ".join(dropped), ConversionWarning, stacklevel=3)
    if image.mode == "P":
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))
