"""Unconditional image generation: sample token grids from the prior, decode them. Grids larger than
the prior's window are drawn through the seed paper's sliding attention window."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .codec import detokenize
from .walk import TokenGrid, walk_prior
from .intprior import IntPrior
from .zoo import Model, resolve_model


@torch.inference_mode()
def walk_sliding_window(prior: IntPrior, n: int, quality: int, h: int, w: int,
                        choose: Callable[[np.ndarray], np.ndarray], progress: bool = False) -> np.ndarray:
    """Draw n grids (n, quality, h, w) position by position in raster order, each position from the
    window x window crop around it (clamped to the grid) given the crop's tokens before it in the
    crop's own raster order -- all of them already drawn -- as in Taming Transformers. Every position
    takes its own pass over its crop (no cache carries over as the window slides), so this is for
    generation, not coding. `choose(frequencies (n, K))` returns the n symbols, depth by depth."""
    window, device = prior.cfg.window, prior.device
    wh, ww = min(window, h), min(window, w)
    grid = torch.zeros(n, quality, h, w, dtype=torch.long, device=device)
    for y in tqdm(range(h), desc="sampling rows", disable=not progress):
        top = min(max(y - window // 2, 0), h - wh)
        for x in range(w):
            left = min(max(x - window // 2, 0), w - ww)
            t = (y - top) * ww + (x - left)  # the position inside its crop
            before = grid[:, :, top:top + wh, left:left + ww].flatten(2).transpose(1, 2)[:, :t]  # (n, t, q)
            tokens = torch.cat([prior.t["start"].expand(n, 1, -1), prior.embed_codes(before)], 1)
            steps = torch.arange(t + 1, device=device)
            state = prior.spatial(tokens + prior.positions(steps, torch.tensor(ww, device=device), quality))[:, -1]
            for d in range(quality):
                freqs = prior.frequencies(state, grid[:, :d, y, x], d)
                grid[:, d, y, x] = torch.from_numpy(choose(freqs.cpu().double().numpy())).to(device)
    return grid.cpu().numpy()


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
           seed: int = 0, model: Model | str | None = None, device: str = "cpu",
           progress: bool = False) -> list[Image.Image]:
    """n images of size (width, height), as Pillow gives sizes, drawn from the prior: within one window
    (256 x 256 pixels for the shipped model) as the codec walks it; larger through the sliding attention
    window (progress: a bar on stderr)."""
    if n < 1 or not 0 < temperature < math.inf or (top_k is not None and top_k < 1) \
            or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("need n >= 1, a finite temperature > 0, top_k >= 1, 0 < top_p <= 1")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (width, height), each at least 1, got {size!r}")
    m = resolve_model(model, device)
    quality = m.check_quality(quality)
    width, height = size
    gh, gw = m.grid_shape(width, height)
    rng = np.random.default_rng(seed)
    choose = _sampler(rng, temperature, top_k, top_p)
    window = m.prior.cfg.window
    if gh <= window and gw <= window:
        grids = [TokenGrid(walk_prior(m.prior, quality, gh, gw, choose), m.codebook_size) for _ in range(n)]
    else:
        grids = [TokenGrid(g, m.codebook_size) for g in walk_sliding_window(m.prior, n, quality, gh, gw, choose, progress)]
    return [detokenize(grid, width, height, m) for grid in grids]


def image_grid(images: list[Image.Image], columns: int) -> Image.Image:
    """Tile equally sized images into one picture, `columns` per row."""
    w, h = images[0].size
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * w, (i // columns) * h))
    return sheet
