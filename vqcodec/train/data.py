"""Training images: a folder read once into memory, served as random flipped crops."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..images import image_files, to_rgb
from ..tokenizer import to_unit_range
from .heldout import is_held_out


PACKS = "crops-*.npz"  # a folder of these trains on the regions they hold instead of its images


def jpeg_bytes(region: np.ndarray, quality: int = 90) -> np.ndarray:
    """A uint8 RGB region as JPEG bytes, as packs hold it."""
    buf = io.BytesIO()
    Image.fromarray(region).save(buf, "JPEG", quality=quality)
    return np.frombuffer(buf.getvalue(), np.uint8)


def write_pack(path: Path, regions: list[np.ndarray]) -> None:
    """JPEG-coded regions (jpeg_bytes) in one .npz: `jpeg` (all bytes) and `offsets` (n + 1)."""
    offsets = np.cumsum([0] + [len(r) for r in regions]).astype(np.int64)
    np.savez(path, jpeg=np.concatenate(regions), offsets=offsets)


def read_pack(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        data, offsets = z["jpeg"], z["offsets"]
    return [np.asarray(Image.open(io.BytesIO(data[a:b].tobytes())).convert("RGB"))
            for a, b in zip(offsets[:-1], offsets[1:])]


def folders(data: str | os.PathLike) -> list[Path]:
    """The training folders a run's `data` names: one, or several joined by os.pathsep (':')."""
    return [Path(f) for f in str(data).split(os.pathsep) if f]


class CropDataset:
    """All images of one or more folders (`data`: folders joined by os.pathsep) as uint8 RGB arrays, read
    as the codec reads them (upright by their EXIF orientation), but the held-out ones (every
    held_out_every-th of each folder; 0: none); images smaller than a crop are upscaled. A folder with
    crop packs (write_pack) serves the packs' regions instead. quiet: no progress bar while reading."""

    def __init__(self, data: str | os.PathLike, crop: int, seed: int = 0, held_out_every: int = 0,
                 quiet: bool = False):
        self.crop, self.quiet = crop, quiet
        self.rng = np.random.default_rng(seed)
        self.images = [a for folder in folders(data) for a in self._read(folder, held_out_every)]

    def _read(self, folder: Path, held_out_every: int) -> list[np.ndarray]:
        packs = sorted(folder.glob(PACKS))
        if packs:  # packed regions, without the held-out images already
            images = [a for pack in packs for a in read_pack(pack)]
            if min(min(a.shape[:2]) for a in images) < self.crop:
                raise ValueError(f"the packed regions in {folder} are smaller than {self.crop}-pixel crops")
            return images
        images, crop = [], self.crop
        files = [p for k, p in enumerate(image_files(folder)) if not is_held_out(k, held_out_every)]
        for path in tqdm(files, desc="loading images", leave=False, disable=self.quiet):
            a = to_rgb(path, colour_manage=False)
            if min(a.shape[:2]) < crop:
                im, s = Image.fromarray(a), crop / min(a.shape[:2])
                a = np.asarray(im.resize((max(crop, round(im.width * s)), max(crop, round(im.height * s))),
                                         Image.BICUBIC))
            images.append(a)
        return images

    def batch(self, n: int) -> torch.Tensor:
        """n random crops, randomly flipped left-right: (n, 3, crop, crop) in [-1, 1]."""
        out = np.empty((n, self.crop, self.crop, 3), np.uint8)
        for k in range(n):
            im = self.images[self.rng.integers(len(self.images))]
            y = self.rng.integers(im.shape[0] - self.crop + 1)
            x = self.rng.integers(im.shape[1] - self.crop + 1)
            c = im[y:y + self.crop, x:x + self.crop]
            out[k] = c[:, ::-1] if self.rng.random() < 0.5 else c
        return to_unit_range(torch.from_numpy(out).permute(0, 3, 1, 2))
