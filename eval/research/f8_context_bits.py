"""What the f8 probe's fine codes would cost under a context model that sees the f16 grid: a small CNN
learns each fine depth's index distribution from the f16 codes kept at level 3, the fine codes of the
depths before it, and (checkerboard, two passes per depth) the codes of the other half of the same depth.
This is the parallel decoding the issue asks for (a few passes given the whole coarse grid), not a
shipped prior: its held-out cross-entropy is an estimate of the bits, beside the context-free entropy
f8_probe.py reports.

    python eval/research/f8_context_bits.py eval/runs/vqgan-f16-f8 ../shared/data/train ../shared/data/train_extra \
        --cpu-minutes 15 --out eval/results/research/f8_context_bits.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from f8_probe import COARSE_LEVELS, Hierarchy, level_bpp, load_probe
from vqcodec.tokenizer import to_unit_range
from vqcodec.train.data import CropDataset
from vqcodec.train.heldout import held_out_pictures, whole_tokens


def checkerboard(h: int, w: int) -> torch.Tensor:
    """(1, 1, h, w): 1 on the anchors (coded first), 0 on the rest."""
    return ((torch.arange(h)[:, None] + torch.arange(w)[None]) % 2 == 0).float()[None, None]


class FineContext(nn.Module):
    """logits (B, K, 2h, 2w) of one fine depth's indices from what the decoder knows before them."""

    def __init__(self, coarse_dim: int, fine_dim: int, depth: int, K: int, width: int = 128):
        super().__init__()
        self.depth = nn.Embedding(depth, width)
        self.read = nn.Conv2d(coarse_dim + 2 * fine_dim + 1, width, 3, padding=1)
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, K, 1))

    def forward(self, coarse: torch.Tensor, before: torch.Tensor, half: torch.Tensor, known: torch.Tensor,
                d: int) -> torch.Tensor:
        """coarse (B, Dc, h, w) f16 codes; before (B, Df, 2h, 2w) fine codes of depths < d summed; half
        (B, Df, 2h, 2w) this depth's codes where `known` (1, 1, 2h, 2w) is 1, else 0."""
        up = F.interpolate(coarse, scale_factor=2, mode="nearest")
        h = self.read(torch.cat([up, before, half, known.expand(len(up), -1, -1, -1)], 1))
        return self.body(h + self.depth.weight[d][None, :, None, None])


@torch.no_grad()
def grids(model: Hierarchy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(f16 codes summed over depths 1-3 (B, Dc, h, w), fine indices (B, depth, 2h, 2w))."""
    feats, z = model.coarse(x)
    q = model.tok.quantizer
    base = q.lookup(q.quantize(z)[0][:, :COARSE_LEVELS])
    return base, model.fine.quantizer.quantize(model.fine_latent(feats, x, base)[0])[0]


def bits(ctx: FineContext, model: Hierarchy, base: torch.Tensor, fidx: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in bits per fine depth (depth,), summed over positions and the batch."""
    books = model.fine.quantizer.codebooks
    anchors = checkerboard(*fidx.shape[2:])
    before = torch.zeros(len(fidx), books.shape[2], *fidx.shape[2:])
    out = []
    for d in range(fidx.shape[1]):
        codes = books[d][fidx[:, d]].permute(0, 3, 1, 2)
        total = 0
        # pass 1: the anchors, knowing nothing of this depth; pass 2: the rest, knowing the anchors
        for known, scored in ((torch.zeros_like(anchors), anchors), (anchors, 1 - anchors)):
            logits = ctx(base, before, codes * known, known, d)
            ce = F.cross_entropy(logits, fidx[:, d], reduction="none") / np.log(2)
            total = total + (ce * scored[:, 0]).sum()
        out.append(total)
        before = before + codes
    return torch.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", type=Path, help="the f8 hierarchy (a lasting state or probe folder)")
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--tokenizer", type=Path, help="the f16 tokenizer under a probe folder (not needed for a state)")
    ap.add_argument("--cpu-minutes", type=float, default=15.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, record = load_probe(args.tokenizer, args.state)
    model.requires_grad_(False)
    books = model.fine.quantizer.codebooks
    ctx = FineContext(model.tok.cfg.code_dim, books.shape[2], books.shape[0], books.shape[1])
    opt = torch.optim.Adam(ctx.parameters(), lr=1e-3)
    data = CropDataset(os.pathsep.join(map(str, args.data)), 128, seed=7, held_out_every=20)
    budget, start, step = args.cpu_minutes * 60, time.process_time(), 0
    bar = tqdm(desc="fine context", unit="step", file=sys.stderr)
    while (used := time.process_time() - start) < budget:
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * used / budget))
        base, fidx = grids(model, data.batch(16))
        per_depth = bits(ctx, model, base, fidx) / fidx[:, 0].numel()
        opt.zero_grad(set_to_none=True)
        per_depth.sum().backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(bits=" ".join(f"{b:.2f}" for b in per_depth.tolist()))
    bar.close()
    results = {"state": str(args.state), "steps": step, "cpu_seconds": round(time.process_time() - start, 1),
               "folders": {}}
    f = model.tok.cfg.downsample
    with torch.no_grad():
        for folder in args.data:
            total, positions = 0, 0
            for rgb in held_out_pictures(folder):
                rgb = whole_tokens(rgb, model.tok)
                base, fidx = grids(model, to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]))
                total = total + bits(ctx, model, base, fidx)
                positions += fidx[:, 0].numel()
            per_index = (total / positions).tolist()
            results["folders"][folder.name] = {"bits_per_index": [round(b, 3) for b in per_index],
                                               "bpp_estimate": level_bpp(per_index, f)}
            print(folder.name, results["folders"][folder.name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
