"""Unconditional image generation: sample token grids from the prior, decode them."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .codec import detokenize
from .coding import TokenGrid, walk_prior
from .zoo import Model, load_model


def _sampler(rng: np.random.Generator, temperature: float, top_k: int | None, top_p: float | None):
    def choose(freqs: np.ndarray) -> np.ndarray:
        logp = np.log(freqs) / temperature  # the prior's frequencies are exp(logits), all >= 1
        p = np.exp(logp - logp.max(1, keepdims=True))
        if top_k:
            kth = -np.sort(-p, 1)[:, min(top_k, p.shape[1]) - 1:min(top_k, p.shape[1])]
            p = np.where(p >= kth, p, 0.0)
        if top_p is not None and top_p < 1.0:
            order = np.argsort(-p, 1)
            sorted_p = np.take_along_axis(p, order, 1)
            cum = np.cumsum(sorted_p, 1) / sorted_p.sum(1, keepdims=True)
            keep_sorted = cum - sorted_p / sorted_p.sum(1, keepdims=True) < top_p  # always keeps the top one
            keep = np.zeros_like(keep_sorted)
            np.put_along_axis(keep, order, keep_sorted, 1)
            p = np.where(keep, p, 0.0)
        p /= p.sum(1, keepdims=True)
        return np.array([rng.choice(p.shape[1], p=row) for row in p], np.int64)
    return choose


def sample(n: int = 1, size: tuple[int, int] = (256, 256), quality: int | None = None,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           seed: int = 0, model: Model | str | None = None, device: str = "cpu") -> list[Image.Image]:
    """n images of size (height, width) drawn from the prior. Grids larger than the prior's window
    are drawn tile by tile (tiles are independent)."""
    if n < 1 or temperature <= 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("need n >= 1, temperature > 0, top_k >= 1, 0 < top_p <= 1")
    m = model if isinstance(model, Model) else load_model(model, device)
    quality = m.default_quality if quality is None else quality
    if not 1 <= quality <= m.levels:
        raise ValueError(f"quality must be from 1 to {m.levels}")
    height, width = size
    gh, gw = -(-height // m.downsample), -(-width // m.downsample)
    rng = np.random.default_rng(seed)
    choose = _sampler(rng, temperature, top_k, top_p)
    images = []
    for _ in range(n):
        grid = TokenGrid(walk_prior(m.prior, quality, gh, gw, choose), m.codebook_size)
        images.append(detokenize(grid, width, height, m))
    return images


def image_grid(images: list[Image.Image], columns: int) -> Image.Image:
    """Tile equally sized images into one picture, `columns` per row."""
    w, h = images[0].size
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * w, (i // columns) * h))
    return sheet
