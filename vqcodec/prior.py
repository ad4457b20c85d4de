"""Transformer prior over token grids: p(codes at position t | codes before t) for one tile.

A grid position carries `q` codes (the residual depths of the quality level). As in the
RQ-Transformer, a spatial GPT runs once per position over the raster sequence of a tile (window x
window positions at most), and a small depth head predicts the q codes of a position one after another
from the GPT's state plus the codes already known at that position. The spatial input at position t is
the summed embedding of the codes at t-1 (a start vector at t = 0), plus learned row, column and
quality-level embeddings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class PriorConfig:
    codebook_size: int = 1024  # K
    depth: int = 4             # residual depths the tokenizer has (= quality levels)
    window: int = 16           # tile side in positions: the attention context
    n_layer: int = 4           # sized to train on two CPU cores in about an hour
    n_head: int = 6
    n_embd: int = 192
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PriorConfig":
        return cls(**d)


class SelfAttention(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> causal self-attention over x (B, T, C)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(cfg.n_embd), SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class DepthHead(nn.Module):
    """Logits for depth d from the spatial state plus the (embedded) codes of depths < d at the same
    position."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.depth_emb = nn.Embedding(cfg.depth, cfg.n_embd)
        self.block = nn.Sequential(nn.LayerNorm(cfg.n_embd), nn.Linear(cfg.n_embd, 2 * cfg.n_embd), nn.GELU(),
                                   nn.Linear(2 * cfg.n_embd, cfg.n_embd))
        self.ln = nn.LayerNorm(cfg.n_embd)
        self.out = nn.Linear(cfg.n_embd, cfg.depth * cfg.codebook_size)
        self.K = cfg.codebook_size

    def forward(self, h: torch.Tensor, known: torch.Tensor | None, d: int) -> torch.Tensor:
        """h: (..., C) spatial state; known: (..., C) summed embedding of the codes of depths < d
        (None for d = 0) -> logits (..., K)."""
        u = h + self.depth_emb.weight[d]
        if known is not None:
            u = u + known
        u = u + self.block(u)
        w = self.out.weight[d * self.K:(d + 1) * self.K]
        return F.linear(self.ln(u), w, self.out.bias[d * self.K:(d + 1) * self.K])


class PriorModel(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        C, K = cfg.n_embd, cfg.codebook_size
        self.code_emb = nn.Embedding(cfg.depth * K, C)
        self.start = nn.Parameter(torch.zeros(C))
        self.row_emb = nn.Embedding(cfg.window, C)
        self.col_emb = nn.Embedding(cfg.window, C)
        self.quality_emb = nn.Embedding(cfg.depth, C)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = DepthHead(cfg)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., q) -> summed depth-specific embeddings (..., C)."""
        offsets = torch.arange(codes.shape[-1], device=codes.device) * self.cfg.codebook_size
        return self.code_emb(codes + offsets).sum(-2)

    def positions(self, t: torch.Tensor, tile_w: torch.Tensor | int, quality: int) -> torch.Tensor:
        """Row + column + quality embeddings of raster positions t (any shape) in tiles `tile_w`
        wide (broadcast against t): (*t.shape, C)."""
        return self.row_emb(t // tile_w) + self.col_emb(t % tile_w) + self.quality_emb.weight[quality - 1]

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) embedded positions -> causal spatial state (B, T, C)."""
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass over whole tiles. codes: (B, th, tw, q) -> logits (B, th*tw, q, K)."""
        B, th, tw, quality = codes.shape
        seq = codes.reshape(B, th * tw, quality)
        x = torch.cat([self.start.expand(B, 1, -1), self.embed_codes(seq[:, :-1])], 1)
        h = self.spatial(x + self.positions(torch.arange(th * tw, device=codes.device), tw, quality))
        return torch.stack([self.logits(h, seq[..., :d], d) for d in range(quality)], 2)

    def logits(self, h: torch.Tensor, known: torch.Tensor, d: int) -> torch.Tensor:
        """Logits (..., K) of depth d at positions with spatial state h (..., C) and codes
        known (..., d) at depths < d. The code embeddings are shared with the spatial input."""
        return self.head(h, self.embed_codes(known) if d else None, d)
