"""The fine grid's prior: a small CNN that gives each fine index's distribution from the whole coarse grid.

A fine grid (hierarchy.py) has four times the coarse grid's positions; walked position by position it would
cost four times the transformer's time. It is coded instead in two passes per fine depth, as learned
image codecs' checkerboard context models do: first the anchors (every other position, a checkerboard)
given everything the decoder knows before that depth (the coarse grid, the fine depths below), then the
other half given the anchors too. Each pass is one run of the network over the whole grid, so a picture's
fine grid costs 2 x depth passes, whatever its size.

What the network reads at a fine position, as embeddings summed into `width` channels:
- the codes of its coarse position (one table per coarse depth) and where it lies in it (one of 2 x 2);
- the fine codes of the depths below d at that position (one table per depth);
- in the second pass, the anchor's own code at depth d (zero elsewhere), and which depth and pass it is.
Then `layers` 3x3 convolutions with ReLU and a 1x1 convolution to the logits: every layer is one that an
integer twin can run exactly (ReLU, convolutions as matrix products).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class FinePriorConfig:
    coarse_codebook_size: int = 1024
    coarse_levels: int = 3
    codebook_size: int = 256     # the fine codebooks'
    depth: int = 3               # fine depths
    width: int = 96              # channels of the network
    layers: int = 3              # 3x3 convolutions

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FinePriorConfig":
        return cls(**d)


def anchors(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(h, w) bool: the positions coded in a depth's first pass, where row + column is even."""
    return (torch.arange(h, device=device)[:, None] + torch.arange(w, device=device)[None]) % 2 == 0


def phases(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(h, w) long: where each fine position lies in its coarse position, 0 .. 3 (row parity x 2 + column parity)."""
    return (torch.arange(h, device=device)[:, None] % 2) * 2 + torch.arange(w, device=device)[None] % 2


class FinePrior(nn.Module):
    def __init__(self, cfg: FinePriorConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.width
        self.coarse_emb = nn.Embedding(cfg.coarse_levels * cfg.coarse_codebook_size, C)
        self.phase_emb = nn.Embedding(4, C)
        self.below_emb = nn.Embedding(cfg.depth * cfg.codebook_size, C)    # fine codes of the depths below
        self.anchor_emb = nn.Embedding(cfg.depth * cfg.codebook_size, C)   # this depth's anchors, second pass
        self.pass_emb = nn.Embedding(2 * cfg.depth, C)
        self.convs = nn.ModuleList(nn.Conv2d(C, C, 3, padding=1) for _ in range(cfg.layers))
        self.out = nn.Conv2d(C, cfg.codebook_size, 1)
        for emb in (self.coarse_emb, self.phase_emb, self.below_emb, self.anchor_emb, self.pass_emb):
            nn.init.normal_(emb.weight, std=0.5 / cfg.coarse_levels)

    def context(self, coarse: torch.Tensor, fine: torch.Tensor, d: int, second: bool) -> torch.Tensor:
        """What the network reads (B, C, 2h, 2w) before depth d's pass (second: the anchors known):
        coarse (B, coarse_levels, h, w), fine (B, >= d [+1 in the second pass], 2h, 2w) indices."""
        cfg = self.cfg
        levels = torch.arange(cfg.coarse_levels, device=coarse.device)[None, :, None, None]
        x = self.coarse_emb(coarse + levels * cfg.coarse_codebook_size).sum(1)               # (B, h, w, C)
        x = x.repeat_interleave(2, 1).repeat_interleave(2, 2)                                # (B, 2h, 2w, C)
        H, W = x.shape[1:3]
        x = x + self.phase_emb(phases(H, W, x.device)) + self.pass_emb.weight[2 * d + int(second)]
        if d:
            below = torch.arange(d, device=fine.device)[None, :, None, None]
            x = x + self.below_emb(fine[:, :d] + below * cfg.codebook_size).sum(1)
        if second:
            known = self.anchor_emb(fine[:, d] + d * cfg.codebook_size)
            x = x + known * anchors(H, W, x.device)[None, :, :, None]
        return x.permute(0, 3, 1, 2)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor, d: int, second: bool) -> torch.Tensor:
        """Logits (B, K, 2h, 2w) of depth d's indices in one pass (see context)."""
        x = self.context(coarse, fine, d, second)
        for conv in self.convs:
            x = conv(F.relu(x))
        return self.out(F.relu(x))

    def bits(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """Cross-entropy in bits per index of each fine depth (depth,): coarse (B, coarse_levels, h, w),
        fine (B, depth, 2h, 2w); each position scored in the pass that codes it."""
        first = anchors(*fine.shape[2:], fine.device)
        out = []
        for d in range(fine.shape[1]):
            total = 0.0
            for second, scored in ((False, first), (True, ~first)):
                ce = F.cross_entropy(self(coarse, fine, d, second), fine[:, d], reduction="none")
                total = total + (ce * scored).sum()
            out.append(total / fine[:, d].numel())
        return torch.stack(out) / torch.log(torch.tensor(2.0))
