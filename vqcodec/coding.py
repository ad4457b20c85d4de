"""Entropy coding of token grids with constriction's range coder.

Two modes: `uniform` (every index costs log2 K bits; the baseline) and `prior` (the integer-exact
transformer prior, intprior.IntPrior). With the prior, the grid is cut into window x window tiles;
groups of up to TILE_GROUP consecutive tiles are coded in lock-step, position by position. The decoder
(and the sampler) walks the prior step by step; the encoder gets the same integer frequencies for a
whole group from one parallel pass, which the integer arithmetic makes equal bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import constriction
import numpy as np
import torch

from .bitstream import FormatError
from .intprior import IntPrior

CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
TILE_GROUP = 16  # tiles coded together: bounds the memory of encoder and decoder on large images
# A range coder's output is at least the information of what it coded, less a few bits, and the encoder
# stores its words without trailing zero bytes (at most a word's worth, as measured). A decoder that has
# read more information than the payload holds plus this slack is decoding data that is not there.
SLACK_BITS = 96
MAX_SYMBOL_BITS = 24  # constriction gives every symbol at least 2^-24 of the range (perfect=False)


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


def tile_groups(h: int, w: int, window: int) -> list[list[tuple[int, int, int, int]]]:
    """The tiles in coding groups of up to TILE_GROUP, in raster order."""
    tiles = tile_layout(h, w, window)
    return [tiles[i:i + TILE_GROUP] for i in range(0, len(tiles), TILE_GROUP)]


def _raster(tile: tuple[int, int, int, int], t: int) -> tuple[int, int]:
    """Grid (y, x) of raster position t inside a tile."""
    y0, x0, _, tw = tile
    return y0 + t // tw, x0 + t % tw


@torch.inference_mode()
def walk_prior(prior: IntPrior, quality: int, h: int, w: int,
               choose: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Visit every token in coding order, position by position. For each (position, depth) step of a
    tile group, `choose(frequencies)` gets the integer frequencies (n, K) (as float64) of the n tiles
    still active and returns their symbols (n,). Returns the grid (quality, h, w) they form."""
    device = prior.device
    grid = np.zeros((quality, h, w), np.int64)
    for group in tile_groups(h, w, prior.cfg.window):
        tile_w = torch.tensor([t[3] for t in group], device=device)
        lengths = np.array([t[2] * t[3] for t in group])
        last = torch.tensor(lengths - 1, device=device)
        caches, prev = prior.new_caches(), None
        for t in range(int(lengths.max())):
            active = np.flatnonzero(lengths > t)
            rows = torch.from_numpy(active).to(device)
            # Finished tiles keep stepping (on their last position) so that the batch keeps its shape.
            state = prior.step(prev, last.clamp(max=t), tile_w, quality, caches)[rows]   # (n, C)
            codes = torch.zeros(len(group), quality, dtype=torch.long, device=device)
            for d in range(quality):
                freqs = prior.frequencies(state, codes[rows, :d], d)                   # (n, K)
                codes[rows, d] = torch.from_numpy(choose(freqs.cpu().double().numpy())).to(device)
            c = codes.cpu().numpy()
            for b in active:
                grid[(slice(None), *_raster(group[b], t))] = c[b]
            prev = codes
    return grid


@torch.inference_mode()
def group_pass(prior: IntPrior, indices: np.ndarray, group: list) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """One parallel pass of the prior over a tile group of the grid indices (q, h, w): the group's codes
    (B, T, q) in each tile's raster order (zero past a tile's end), its tiles' lengths (B,) and the
    frequencies (B, T, q, K)."""
    T, q = max(t[2] * t[3] for t in group), indices.shape[0]
    codes = np.zeros((len(group), T, q), np.int64)
    for b, (y0, x0, th, tw) in enumerate(group):
        codes[b, :th * tw] = indices[:, y0:y0 + th, x0:x0 + tw].reshape(q, -1).T
    lengths = np.array([t[2] * t[3] for t in group])
    device = prior.device
    freqs = prior.forward(torch.from_numpy(codes).to(device), torch.from_numpy(lengths).to(device),
                          torch.tensor([t[3] for t in group], device=device))
    return codes, lengths, freqs


def _group_frequencies(prior: IntPrior, grid: TokenGrid, group: list) -> tuple[np.ndarray, np.ndarray]:
    """Symbols (n,) and frequencies (n, K) of one tile group in coding order, from one parallel pass."""
    codes, lengths, freqs = group_pass(prior, grid.indices, group)                     # freqs (B, T, q, K)
    T, q, device = codes.shape[1], grid.quality, prior.device
    # Coding order: position t, then depth d, then tile b among those that have a position t.
    order = torch.from_numpy(np.arange(T)[:, None, None] < lengths[None, None, :]).expand(T, q, len(group))
    symbols = torch.from_numpy(codes).permute(1, 2, 0)[order]
    return symbols.numpy(), freqs.permute(1, 2, 0, 3)[order.to(device)].cpu().double().numpy()


def _to_bytes(words: np.ndarray) -> bytes:
    # The range decoder reads missing words as zeros, so trailing zero bytes need not be stored.
    return words.astype("<u4").tobytes().rstrip(b"\0")


def _to_words(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload + b"\0" * (-len(payload) % 4), dtype="<u4").astype(np.uint32)


def encode_tokens(grid: TokenGrid, prior: IntPrior | None) -> bytes:
    """Range-code a token grid; prior=None codes uniformly."""
    encoder = constriction.stream.queue.RangeEncoder()
    if prior is None:
        encoder.encode(grid.indices.ravel().astype(np.int32),
                       constriction.stream.model.Uniform(grid.codebook_size))
        return _to_bytes(encoder.get_compressed())
    for group in tile_groups(*grid.shape, prior.cfg.window):
        symbols, freqs = _group_frequencies(prior, grid, group)
        encoder.encode(symbols.astype(np.int32), CATEGORICAL, freqs)
    return _to_bytes(encoder.get_compressed())


def payload_too_short(payload: bytes, information_bits: float) -> bool:
    """Whether a payload of this many bytes cannot hold this much information."""
    return information_bits > 8 * len(payload) + SLACK_BITS


def decode_tokens(payload: bytes, quality: int, shape: tuple[int, int], codebook_size: int,
                  prior: IntPrior | None) -> TokenGrid:
    """Inverse of encode_tokens. Raises FormatError as soon as the payload proves too short for its grid
    or the coder meets data no encoder could have written: work before a refusal grows with the
    payload's size, not with the grid's."""
    decoder = constriction.stream.queue.RangeDecoder(_to_words(payload))
    h, w = shape
    if prior is None:
        if payload_too_short(payload, quality * h * w * np.log2(codebook_size)):
            raise FormatError(f"payload of {len(payload)} bytes is too short for a {quality}x{h}x{w} grid")
        flat = decoder.decode(constriction.stream.model.Uniform(codebook_size), quality * h * w)
        return TokenGrid(flat.reshape(quality, h, w).astype(np.int64), codebook_size)

    information = 0.0

    def read(freqs: np.ndarray) -> np.ndarray:
        nonlocal information
        try:
            symbols = decoder.decode(CATEGORICAL, freqs).astype(np.int64)
        except (AssertionError, ValueError, RuntimeError) as e:  # constriction's check of its own state
            raise FormatError(f"the payload is not a valid range-coder stream for this model ({e})") from None
        p = freqs[np.arange(len(symbols)), symbols] / freqs.sum(1)
        information += float(np.minimum(-np.log2(p), MAX_SYMBOL_BITS).sum())
        if payload_too_short(payload, information):
            raise FormatError(f"payload of {len(payload)} bytes ran out before the {quality}x{h}x{w} grid "
                              "was decoded: the file is truncated or damaged")
        return symbols

    return TokenGrid(walk_prior(prior, quality, h, w, read), codebook_size)
