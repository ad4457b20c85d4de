"""Writing outputs so that nothing is lost: atomically (a failure or a signal leaves no partial or
temporary file; the data reach the disk before the name does), never over a file the caller did not say
to replace, with the permissions the user's umask gives, in the format the path's suffix names."""
from __future__ import annotations

import errno
import glob
import os
import tempfile
from pathlib import Path
from typing import Callable

from PIL import Image


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputExists(FileExistsError):
    """The output file exists and the caller did not say to replace it."""


def _publish(tmp: str, path: Path, replace: bool) -> None:
    """Give the finished temporary file its name. Without `replace` the name is taken by a hard link,
    which fails if the name exists at that moment, so two writers never replace each other's file."""
    exists = OutputExists(errno.EEXIST, "the output exists (give --overwrite to replace it)", str(path))
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise exists from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # a file system without hard links: check, then rename (a writer in between could still lose)
        if path.exists():
            raise exists from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def write_atomically(path: str | os.PathLike, write: Callable[[str], None], replace: bool = True) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, flush it to the disk, then give it its
    name; without `replace`, an existing `path` (even one that appeared while writing) is left alone and
    OutputExists raised. Temporaries a killed writer left for `path` are removed first. The file gets the
    permissions any new file gets under the umask. OSErrors name `path`, not the temporary file."""
    path = Path(path)
    remove_stray_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _publish(tmp, path, replace)
    except OutputExists:
        os.unlink(tmp)
        raise
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:  # also KeyboardInterrupt and the CLI's SystemExit on SIGTERM
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stray_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files for `path` that write_atomically left beside it when its process was
    killed (`.NAME.PID.XXXXXXXX.tmp`, PID no longer running); those of live processes stay."""
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # [".NAME", PID, random, "tmp"]
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        except PermissionError:  # alive, someone else's
            pass
    return removed


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


def save_image(image: Image.Image, path: str | os.PathLike, replace: bool = True) -> None:
    """Write a PIL image in the format its path's suffix names, atomically (see write_atomically)."""
    fmt = image_format(path)
    write_atomically(path, lambda tmp: image.save(tmp, format=fmt), replace)
