"""Unconditional image generation: sample token grids from the prior, decode them. Grids larger than
the prior's window are drawn through the seed paper's sliding attention window; a hierarchy's fine
grid is drawn from the fine grid's prior over the drawn coarse grid."""
from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .bitstream import DEFAULT_MAX_PIXELS
from .codec import detokenize, tokenize
from .images import ImageLike, to_rgb
from .intfineprior import decode_fine
from .intprior import IntPrior
from .walk import TokenGrid, walk_prior
from .zoo import Model, resolve_model


@torch.inference_mode()
def walk_sliding_window(prior: IntPrior, n: int, quality: int, h: int, w: int,
                        choose: Callable[[np.ndarray], np.ndarray], progress: bool = False,
                        given: np.ndarray | None = None, keep: np.ndarray | None = None) -> np.ndarray:
    """Draw n grids (n, quality, h, w) position by position in raster order, each position from the
    window x window crop around it (clamped to the grid) given the crop's tokens before it in the
    crop's own raster order -- all of them already drawn -- as in Taming Transformers. Every position
    takes its own pass over its crop (no cache carries over as the window slides), so this is for
    generation, not coding. `choose(frequencies (n, K))` returns the n symbols, depth by depth.
    given (quality, h, w) and keep (h, w) bool: positions where keep is set take given's codes instead
    of a draw (completion); the draws after them see them."""
    window, device = prior.cfg.window, prior.device
    wh, ww = min(window, h), min(window, w)
    grid = torch.zeros(n, quality, h, w, dtype=torch.long, device=device)
    if given is not None:
        grid[:] = torch.from_numpy(given).to(device)
    for y in tqdm(range(h), desc="sampling rows", disable=not progress):
        top = min(max(y - window // 2, 0), h - wh)
        for x in range(w):
            if keep is not None and keep[y, x]:
                continue
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
           seed: int = 0, model: Model | str | None = None, device: str | None = None,
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
    window, coarse = m.prior.cfg.window, min(quality, m.coarse_levels)
    if gh <= window and gw <= window:
        grids = [walk_prior(m.prior, coarse, gh, gw, choose) for _ in range(n)]
    else:
        grids = list(walk_sliding_window(m.prior, n, coarse, gh, gw, choose, progress))
    if quality > coarse:
        return [detokenize(TokenGrid(g, m.codebook_size, decode_fine(m.fine_prior, g, quality - coarse, choose),
                                     m.fine_codebook_size), width, height, m) for g in grids]
    return [detokenize(TokenGrid(g, m.codebook_size), width, height, m) for g in grids]


def keep_mask(keep: str | ImageLike, width: int, height: int) -> np.ndarray:
    """What to keep of a width x height picture, (height, width) bool: "top:F" (the top F of its rows),
    "left:F" (the left F of its columns), or a mask picture (a path, array or image) of the same size
    (white = keep)."""
    if isinstance(keep, str) and not os.path.exists(keep):
        side, _, share = keep.partition(":")
        try:
            f = float(share)
        except ValueError:
            f = -1.0
        if side not in ("top", "left") or not 0 <= f <= 1:
            raise ValueError(f"keep must be top:F or left:F with F in [0, 1], or a mask picture; got {keep!r}")
        rows, cols = np.arange(height)[:, None], np.arange(width)[None]
        return np.broadcast_to(rows < f * height if side == "top" else cols < f * width, (height, width)).copy()
    mask = to_rgb(keep).mean(2) >= 128
    if mask.shape != (height, width):
        raise ValueError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the picture {width}x{height}: "
                         "they must be the same size")
    return mask


def token_mask(mask: np.ndarray, f: int) -> np.ndarray:
    """A pixel mask (H, W) -> a token mask (ceil(H/f), ceil(W/f)): a token is kept where at least half
    its f x f pixels are (the edge padded as the codec pads the picture)."""
    H, W = mask.shape
    padded = np.pad(mask, ((0, -H % f), (0, -W % f)), mode="edge")
    return padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean((1, 3)) >= 0.5


def complete(image: ImageLike, keep: str | ImageLike = "top:0.5", n: int = 1, seed: int | None = None,
             quality: int | None = None, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, model: Model | str | None = None, device: str | None = None,
             progress: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[Image.Image]:
    """n completions of a picture: the tokens of what `keep` keeps come from the encoder (as compress
    chooses them, at `quality` depths), every other token is drawn from the prior in raster order
    given all tokens before it, kept or drawn (the sliding window beyond one window). The prior is
    causal: a kept region can steer only what comes after it in raster order, so with left:F the rows'
    right halves follow the kept left halves, but the top rows cannot know what is kept below them.
    Each result has the input's size; the kept tokens' pixels are what reconstruct gives (a seam may
    show where the completion meets them). The same seed gives the same pixels; seed None draws a
    fresh one."""
    if n < 1 or not 0 < temperature < math.inf or (top_k is not None and top_k < 1) \
            or (top_p is not None and not 0 < top_p <= 1):
        raise ValueError("need n >= 1, a finite temperature > 0, top_k >= 1, 0 < top_p <= 1")
    rgb = to_rgb(image)
    height, width = rgb.shape[:2]
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(f"the picture is {width}x{height} ({width * height:,} pixels), over the limit of "
                         f"{max_pixels:,}")
    m = resolve_model(model, device)
    quality = m.check_quality(quality)
    if quality > m.coarse_levels:
        raise ValueError(f"complete draws coarse grids only: give a quality of at most {m.coarse_levels} for "
                         f"model {m.name}, whose levels above it store a fine grid")
    kept = token_mask(keep_mask(keep, width, height), m.downsample)
    if kept.all() or not kept.any():
        raise ValueError(f"keep {keep if isinstance(keep, str) else 'mask'} keeps "
                         f"{'every' if kept.all() else 'no'} token of the picture: nothing to complete "
                         f"(a token is {m.downsample} x {m.downsample} pixels)")
    given = TokenGrid(tokenize(rgb, quality, m, device).indices, m.codebook_size)
    choose = _sampler(np.random.default_rng(seed), temperature, top_k, top_p)
    grids = walk_sliding_window(m.prior, n, quality, *kept.shape, choose, progress, given.indices, kept)
    # The decoder's attention sees the whole grid, so its kept pixels move with the completion: the
    # kept tokens' pixels are put back as the kept tokens alone decode them.
    f = m.downsample
    kept_pixels = np.kron(kept, np.ones((f, f), bool))[:height, :width, None]
    recon = np.asarray(detokenize(given, width, height, m))
    return [Image.fromarray(np.where(kept_pixels, recon,
                                     np.asarray(detokenize(TokenGrid(g, m.codebook_size), width, height, m))))
            for g in grids]


def image_grid(images: list[Image.Image], columns: int) -> Image.Image:
    """Tile equally sized images into one picture, `columns` per row."""
    w, h = images[0].size
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    for i, im in enumerate(images):
        sheet.paste(im, ((i % columns) * w, (i // columns) * h))
    return sheet
