"""Writing outputs so that nothing is lost: atomically (a failure or a signal leaves no partial or
temporary file), with the permissions the user's umask gives, in the format the path's suffix names."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from PIL import Image


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place. The file gets
    the permissions any new file gets under the umask. OSErrors name `path`, not the temporary file."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        os.unlink(tmp)
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:  # also KeyboardInterrupt and the CLI's SystemExit on SIGTERM
        os.unlink(tmp)
        raise


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (or would: the same resolved path), links included."""
    a, b = Path(a), Path(b)
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format an output path's suffix names; ValueError for a suffix Pillow cannot write."""
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{path}: cannot tell an image format Pillow writes from the suffix "
                         f"{suffix or '(none)'!r}; use .png, .jpg, .webp, .tif, ...")
    return fmt


def save_image(image: Image.Image, path: str | os.PathLike) -> None:
    """Write a PIL image in the format its path's suffix names, atomically."""
    fmt = image_format(path)
    write_atomically(path, lambda tmp: image.save(tmp, format=fmt))
