"""The encoder's choice of codes: which index to store at each residual depth of each position.

The tokenizer was trained with greedy residual quantization: at each depth, the code nearest to what the
depths before left of the latent. That is not the best choice for a file, for two reasons: a few
candidate paths through the depths (a beam) find codes whose sum lies closer to the latent, and a code
the prior finds far likelier often lies almost as close and takes fewer bits. So each position's codes
are chosen to minimise

    |latent - sum of the chosen entries|^2 + rd_lambda * (bits the prior gives the chosen codes)

by a beam search over the depths that keeps BEAM_WIDTH paths. The bits come from one parallel pass of the
integer prior over the greedy grid: each choice sees the greedy codes before it as context, not the
chosen ones, which costs a little and saves a sequential walk. Decoders need none of this; the file codes
the chosen grid exactly, and any grid decodes. Measured in eval/encoder_search.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .walk import group_pass, tile_groups
from .intprior import IntPrior

BEAM_WIDTH = 4           # paths kept per position; wider beams gained nothing more on Kodak


def _bits(prior: IntPrior, greedy: np.ndarray, group: list) -> torch.Tensor:
    """-log2 p of every code (N, q, K) at the group's N positions (tile by tile, raster order), from one
    parallel pass of the prior over the greedy grid."""
    _, lengths, freqs = group_pass(prior, greedy, group)                                # (B, T, q, K)
    valid = torch.arange(freqs.shape[1])[None] < torch.from_numpy(lengths)[:, None]    # (B, T)
    freqs = freqs[valid.to(freqs.device)].cpu().double()                                # (N, q, K)
    return (torch.log2(freqs.sum(-1, keepdim=True)) - torch.log2(freqs)).float()


def beam_search(z: torch.Tensor, codebooks: torch.Tensor, bits: torch.Tensor | None, rd_lambda: float,
                width: int = BEAM_WIDTH) -> torch.Tensor:
    """z: latents (N, D); codebooks (q, K, D); bits (N, q, K) or None (rate ignored) -> codes (N, q)."""
    N, D = z.shape
    residual = z[:, None, :]                                    # (N, paths, D)
    rate = torch.zeros(N, 1)                                    # (N, paths): lambda * bits so far
    paths = torch.zeros(N, 1, 0, dtype=torch.long)              # (N, paths, depths so far)
    quality, K = codebooks.shape[0], codebooks.shape[1]
    for d in range(quality):
        book = codebooks[d]
        cost = ((residual * residual).sum(-1, keepdim=True) - 2 * residual @ book.t()
                + (book * book).sum(1))                         # (N, paths, K): squared error left
        step = rd_lambda * bits[:, d] if bits is not None else torch.zeros(N, K)
        cost = cost + rate[..., None] + step[:, None, :]
        best = cost.reshape(N, -1).topk(width if d < quality - 1 else 1, dim=1, largest=False).indices
        parent, code = best // K, best % K                      # (N, new paths)
        paths = torch.cat([paths.gather(1, parent[..., None].expand(-1, -1, d)), code[..., None]], 2)
        residual = residual.gather(1, parent[..., None].expand(-1, -1, D)) - book[code]
        rate = rate.gather(1, parent) + step.gather(1, code)
    return paths[:, 0]


@dataclass
class Choice:
    """The grid the search chose for one rd_lambda, and what it costs."""
    rd_lambda: float
    grid: np.ndarray        # (q, h, w) the indices to store
    sq_error: float         # |latent - sum of the chosen entries|^2, summed over the picture
    depth_bits: tuple       # per depth, the chosen codes' bits in the greedy grid's context
    fine: np.ndarray | None = None  # a hierarchy's fine grid over these codes, at levels that store one

    @property
    def bits(self) -> float:
        """About the payload's size in bits."""
        return sum(self.depth_bits)


@torch.inference_mode()
def choose_codes_for(z: torch.Tensor, greedy: np.ndarray, codebooks: torch.Tensor, prior: IntPrior,
                     rd_lambdas: tuple[float, ...], width: int = BEAM_WIDTH) -> list[Choice]:
    """z: the latent (D, h, w); greedy: the greedy grid (q, h, w); codebooks (depths, K, D); prior: the
    prior whose bits count -> one Choice per rd_lambda (0: distortion only). Works through the grid in the
    codec's tile groups, so memory stays bounded; the prior's pass over a group serves every rd_lambda."""
    quality = greedy.shape[0]
    books = codebooks[:quality].float().cpu()
    grids = [np.empty_like(greedy) for _ in rd_lambdas]
    sq_errors = [0.0] * len(rd_lambdas)
    depth_bits = [np.zeros(quality) for _ in rd_lambdas]
    for group in tile_groups(*greedy.shape[1:], prior.cfg.window):
        ys = np.concatenate([np.repeat(np.arange(y0, y0 + th), tw) for y0, _, th, tw in group])
        xs = np.concatenate([np.tile(np.arange(x0, x0 + tw), th) for _, x0, th, tw in group])
        bits = _bits(prior, greedy, group) if any(lam > 0 for lam in rd_lambdas) else None
        latents = z[:, torch.from_numpy(ys), torch.from_numpy(xs)].t().float().cpu()   # (N, D)
        for i, rd_lambda in enumerate(rd_lambdas):
            codes = beam_search(latents, books, bits if rd_lambda > 0 else None, rd_lambda, width)  # (N, q)
            grids[i][:, ys, xs] = codes.t().numpy()
            chosen = books[torch.arange(quality)[None], codes].sum(1)                         # (N, D)
            sq_errors[i] += ((latents - chosen) ** 2).sum().item()
            if bits is not None:
                depth_bits[i] += bits.gather(2, codes[..., None])[..., 0].sum(0).double().numpy()
    return [Choice(lam, grid, err, tuple(map(float, b))) for lam, grid, err, b in zip(rd_lambdas, grids, sq_errors, depth_bits)]


def choose_codes(z: torch.Tensor, greedy: np.ndarray, codebooks: torch.Tensor, prior: IntPrior,
                 rd_lambda: float, width: int = BEAM_WIDTH) -> np.ndarray:
    """The grid (q, h, w) to store for one rd_lambda (see choose_codes_for)."""
    return choose_codes_for(z, greedy, codebooks, prior, (rd_lambda,), width)[0].grid
