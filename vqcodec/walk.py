"""How the prior visits a token grid: window x window tiles in raster order, coded in groups of up to
TILE_GROUP tiles in lock-step, position by position. The decoder (and the sampler) walks the prior step
by step; the encoder and the encoder's search get the same integer frequencies for a whole group from one
parallel pass, which the integer arithmetic makes equal bit for bit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch

from .intprior import IntPrior

TILE_GROUP = 16  # tiles coded together: bounds the memory of encoder and decoder on large images


@dataclass
class TokenGrid:
    """Codebook indices of one image: indices[d, y, x] is the code of residual depth d at (y, x). A
    hierarchy's levels above its coarse ones add fine[d, y, x], the fine depths on a grid of twice the
    resolution (hierarchy.py); the prior of this module walks the coarse grid alone."""
    indices: np.ndarray  # (coarse depths, h, w) int64
    codebook_size: int
    fine: np.ndarray | None = None  # (fine depths, 2h, 2w) int64
    fine_codebook_size: int = 0

    @property
    def quality(self) -> int:
        """The quality level it stores: its coarse depths and its fine ones."""
        return self.indices.shape[0] + (0 if self.fine is None else self.fine.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the coarse grid."""
        return self.indices.shape[1], self.indices.shape[2]

    def __post_init__(self) -> None:
        if self.indices.ndim != 3 or self.indices.min(initial=0) < 0 or self.indices.max(initial=0) >= self.codebook_size:
            raise ValueError("indices must be (quality, h, w) with values in [0, codebook_size)")
        if self.fine is not None and (self.fine.ndim != 3 or self.fine.shape[0] < 1
                                      or self.fine.shape[1:] != (2 * self.shape[0], 2 * self.shape[1])
                                      or self.fine.min(initial=0) < 0
                                      or self.fine.max(initial=0) >= self.fine_codebook_size):
            raise ValueError("fine must be (depths, 2h, 2w) for an h x w grid, with values in "
                             "[0, fine_codebook_size)")


class Tile(NamedTuple):
    """A window of the grid: its top-left position and its size in tokens (edge tiles are smaller)."""
    y: int
    x: int
    height: int
    width: int

    @property
    def positions(self) -> int:
        return self.height * self.width

    def raster(self, t: int) -> tuple[int, int]:
        """Grid (y, x) of raster position t inside the tile."""
        return self.y + t // self.width, self.x + t % self.width


def tile_layout(h: int, w: int, window: int) -> list[Tile]:
    """Tiles covering an h x w grid in raster order."""
    return [Tile(y, x, min(window, h - y), min(window, w - x))
            for y in range(0, h, window) for x in range(0, w, window)]


def tile_groups(h: int, w: int, window: int) -> list[list[Tile]]:
    """The tiles in coding groups of up to TILE_GROUP, in raster order."""
    tiles = tile_layout(h, w, window)
    return [tiles[i:i + TILE_GROUP] for i in range(0, len(tiles), TILE_GROUP)]


@torch.inference_mode()
def walk_prior(prior: IntPrior, quality: int, h: int, w: int,
               choose: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Visit every token in coding order, position by position. For each (position, depth) step of a
    tile group, `choose(frequencies)` gets the integer frequencies (n, K) (as float64) of the n tiles
    still active and returns their symbols (n,). Returns the grid (quality, h, w) they form."""
    if prior.device.type == "cpu":
        prior = prior.on_host()  # small steps: numpy's per-operation overhead is torch's fraction
    grid = np.zeros((quality, h, w), np.int64)
    for group in tile_groups(h, w, prior.cfg.window):
        tile_w = prior.asarray(np.array([t.width for t in group]))
        lengths = np.array([t.positions for t in group])
        last = prior.asarray(lengths - 1)
        caches, prev = prior.new_caches(), None
        for t in range(int(lengths.max())):
            active = np.flatnonzero(lengths > t)
            rows = prior.asarray(active)
            # Finished tiles keep stepping (on their last position) so that the batch keeps its shape.
            state = prior.step(prev, last.clip(max=t), tile_w, quality, caches)[rows]     # (n, C)
            codes = prior.asarray(np.zeros((len(group), quality), np.int64))
            for d in range(quality):
                freqs = prior.frequencies(state, codes[rows, :d], d)                   # (n, K)
                codes[rows, d] = prior.asarray(choose(as_numpy(freqs).astype(np.float64)))
            c = as_numpy(codes)
            for b in active:
                grid[(slice(None), *group[b].raster(t))] = c[b]
            prev = codes
    return grid


def as_numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    """An array of either kind as a numpy array (copied off a GPU)."""
    return a if isinstance(a, np.ndarray) else a.cpu().numpy()


@torch.inference_mode()
def group_pass(prior: IntPrior, indices: np.ndarray, group: list[Tile]) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """One parallel pass of the prior over a tile group of the grid indices (q, h, w): the group's codes
    (B, T, q) in each tile's raster order (zero past a tile's end), its tiles' lengths (B,) and the
    frequencies (B, T, q, K)."""
    T, quality = max(t.positions for t in group), indices.shape[0]
    codes = np.zeros((len(group), T, quality), np.int64)
    for b, t in enumerate(group):
        codes[b, :t.positions] = indices[:, t.y:t.y + t.height, t.x:t.x + t.width].reshape(quality, -1).T
    lengths = np.array([t.positions for t in group])
    device = prior.device
    freqs = prior.forward(torch.from_numpy(codes).to(device), torch.from_numpy(lengths).to(device),
                          torch.tensor([t.width for t in group], device=device))
    return codes, lengths, freqs


def group_frequencies(prior: IntPrior, grid: TokenGrid, group: list[Tile]) -> tuple[np.ndarray, np.ndarray]:
    """Symbols (n,) and frequencies (n, K) of one tile group in coding order, from one parallel pass."""
    codes, lengths, freqs = group_pass(prior, grid.indices, group)                     # freqs (B, T, q, K)
    T, quality, device = codes.shape[1], grid.indices.shape[0], prior.device
    # Coding order: position t, then depth d, then tile b among those that have a position t.
    order = torch.from_numpy(np.arange(T)[:, None, None] < lengths[None, None, :]).expand(T, quality, len(group))
    symbols = torch.from_numpy(codes).permute(1, 2, 0)[order]
    return symbols.numpy(), freqs.permute(1, 2, 0, 3)[order.to(device)].cpu().double().numpy()
