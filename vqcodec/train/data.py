"""Training images: a folder read once into memory, served as random flipped crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..images import image_files, to_rgb
from ..tokenizer import to_unit_range
from .heldout import is_held_out


class CropDataset:
    """All images of a folder as uint8 RGB arrays, read as the codec reads them (upright by their EXIF
    orientation), but the held-out ones (every held_out_every-th; 0: none); images smaller than a crop
    are upscaled."""

    def __init__(self, folder: Path, crop: int, seed: int = 0, held_out_every: int = 0):
        self.crop = crop
        self.images: list[np.ndarray] = []
        files = [p for k, p in enumerate(image_files(folder)) if not is_held_out(k, held_out_every)]
        for path in tqdm(files, desc="loading images", leave=False):
            a = to_rgb(path)
            if min(a.shape[:2]) < crop:
                im, s = Image.fromarray(a), crop / min(a.shape[:2])
                a = np.asarray(im.resize((max(crop, round(im.width * s)), max(crop, round(im.height * s))),
                                         Image.BICUBIC))
            self.images.append(a)
        self.rng = np.random.default_rng(seed)

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
