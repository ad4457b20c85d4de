"""Entropy coding of token grids with constriction's range coder.

Two modes: `uniform` (every index costs log2 K bits; the baseline) and `prior` (the transformer
prior's probabilities). With the prior, the grid is cut into window x window tiles that are coded in
lock-step as one batch, position by position. The encoder and the decoder run the very same routine
(`walk_prior`), differing only in where each symbol comes from, so the encoder feeds the coder exactly
the floats the decoder will compute on the same kind of machine.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import constriction
import numpy as np
import torch

from .prior import PriorModel

CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


@dataclass
class TokenGrid:
    """Codebook indices of one image: indices[d, y, x] is the code of residual depth d at (y, x)."""
    indices: np.ndarray  # (quality, h, w) int64
    codebook_size: int

    @property
    def quality(self) -> int:
        return self.indices.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.indices.shape[1], self.indices.shape[2]

    def __post_init__(self) -> None:
        if self.indices.ndim != 3 or self.indices.min(initial=0) < 0 or self.indices.max(initial=0) >= self.codebook_size:
            raise ValueError("indices must be (quality, h, w) with values in [0, codebook_size)")


def tile_layout(h: int, w: int, window: int) -> list[tuple[int, int, int, int]]:
    """Tiles (y0, x0, th, tw) covering an h x w grid in raster order; edge tiles are smaller."""
    return [(y, x, min(window, h - y), min(window, w - x))
            for y in range(0, h, window) for x in range(0, w, window)]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Prior inference for coding runs on one thread: the float results must not depend on how a
    BLAS library splits work over however many cores a machine has."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@torch.no_grad()
def walk_prior(prior: PriorModel, quality: int, h: int, w: int,
                choose: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Visit every token in coding order. For each (position, depth) step, `choose(probabilities,
    tile_ids)` gets the float64 distributions (n, K) of the n tiles still active and returns their
    symbols (n,). Returns the grid (quality, h, w) those symbols form."""
    device = prior.start.device
    tiles = tile_layout(h, w, prior.cfg.window)
    tile_w = torch.tensor([t[3] for t in tiles], device=device)
    lengths = np.array([t[2] * t[3] for t in tiles])
    last = torch.tensor(lengths - 1, device=device)
    grid = np.zeros((quality, h, w), np.int64)
    caches, prev = prior.new_caches(), None
    with _one_thread() if device.type == "cpu" else contextlib.nullcontext():
        for t in range(int(lengths.max())):
            active = np.flatnonzero(lengths > t)
            # Finished tiles keep stepping (on their last position) so that the batch never changes shape.
            state = prior.step(prev, last.clamp(max=t), tile_w, quality, caches)  # (B, C)
            codes = torch.zeros(len(tiles), quality, dtype=torch.long, device=device)
            for d in range(quality):
                logits = prior.logits(state, codes[:, :d], d)             # (B, K)
                probs = torch.softmax(logits.double(), -1)[torch.from_numpy(active).to(device)]
                symbols = choose(probs.cpu().numpy(), active)
                codes[torch.from_numpy(active).to(device), d] = torch.from_numpy(symbols).to(device)
            c = codes.cpu().numpy()
            for b in active:
                y0, x0, _, tw = tiles[b]
                grid[:, y0 + t // tw, x0 + t % tw] = c[b]
            prev = codes
    return grid


def _to_bytes(words: np.ndarray) -> bytes:
    # The range decoder reads missing words as zeros, so trailing zero bytes need not be stored.
    return words.astype("<u4").tobytes().rstrip(b"\0")


def _to_words(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload + b"\0" * (-len(payload) % 4), dtype="<u4").astype(np.uint32)


def encode_tokens(grid: TokenGrid, prior: PriorModel | None) -> bytes:
    """Range-code a token grid; prior=None codes uniformly."""
    encoder = constriction.stream.queue.RangeEncoder()
    if prior is None:
        encoder.encode(grid.indices.ravel().astype(np.int32),
                       constriction.stream.model.Uniform(grid.codebook_size))
        return _to_bytes(encoder.get_compressed())
    tiles = tile_layout(*grid.shape, prior.cfg.window)
    symbols, probabilities = [], []

    def take_known(probs: np.ndarray, active: np.ndarray) -> np.ndarray:
        t, d = divmod(len(probabilities), grid.quality)
        known = np.array([grid.indices[d, tiles[b][0] + t // tiles[b][3], tiles[b][1] + t % tiles[b][3]]
                          for b in active])
        symbols.append(known)
        probabilities.append(probs)
        return known

    walk_prior(prior, grid.quality, *grid.shape, take_known)
    encoder.encode(np.concatenate(symbols).astype(np.int32), CATEGORICAL, np.concatenate(probabilities))
    return _to_bytes(encoder.get_compressed())


def decode_tokens(payload: bytes, quality: int, shape: tuple[int, int], codebook_size: int,
                  prior: PriorModel | None) -> TokenGrid:
    """Inverse of encode_tokens."""
    decoder = constriction.stream.queue.RangeDecoder(_to_words(payload))
    h, w = shape
    if prior is None:
        flat = decoder.decode(constriction.stream.model.Uniform(codebook_size), quality * h * w)
        return TokenGrid(flat.reshape(quality, h, w).astype(np.int64), codebook_size)

    def read(probs: np.ndarray, active: np.ndarray) -> np.ndarray:
        return decoder.decode(CATEGORICAL, probs).astype(np.int64)

    return TokenGrid(walk_prior(prior, quality, h, w, read), codebook_size)
