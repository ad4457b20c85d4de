"""Probe: level 6 as a second fine stage, which codes what the picture of level 5 still misses.

The hierarchy's three fine depths share one latent, quantized by residual codebooks; its third depth buys
little (+0.1 dB, residual_transform.md) while the residual it would code still holds much. A second stage
is a FineCoder of its own (hierarchy.py) with one codebook of the same size, whose "coarse picture" is the
hierarchy's picture at fine depth 2: its encoder sees exactly what depth 2 left, its synthesis adds to it.
The lasting state under it is frozen; the stage trains as a new fine side does (train/hierarchy.py: L1 +
LPIPS + the codebook terms, its latent unquantized for the first fifth of the budget, then k-means
codebooks), for a budget of this process's CPU time.

    python eval/research/stage_probe.py eval/runs/vqgan-f16-f8 ../shared/data/train ../shared/data/train_extra \
        --out /work/runs/stage2 --minutes 60 --seed 17
    python eval/research/stage_probe.py eval/runs/vqgan-f16-f8 ../shared/data/train ../shared/data/train_extra \
        --out /work/runs/stage2 --score eval/results/research/stage_probe   # .json and _crops.png
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from f8_probe import crop_grid  # eval/research/, beside this script
from hatching import grid_ratio
from vqcodec.hierarchy import Hierarchy, read_hierarchy
from vqcodec.metrics import load_lpips, ms_ssim, psnr
from vqcodec.tokenizer import to_pixels, to_unit_range
from vqcodec.train.data import CropDataset
from vqcodec.train.heldout import held_out_pictures, whole_tokens
from vqcodec.train.hierarchy import Budget, FrozenPass, train_step
from vqcodec.train.tokenizer import DeadCodeRestarter, kmeans_codebooks

UNDER = 2  # fine depths of the lasting state under the stage


@torch.no_grad()
def picture_under(base: Hierarchy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the f16 encoder's f8 features, the sum of the coarse codes, base's picture at fine depth UNDER)."""
    features, z = base.coarse(x)
    q = base.tok.quantizer
    z_coarse = q.lookup(q.quantize(z)[0][:, :base.fine.cfg.coarse_levels])
    z_fine, x_coarse = base.fine_latent(features, x, z_coarse)
    fine = base.fine.quantizer.quantize(z_fine)[0][:, :UNDER]
    return features, z_coarse, base.fine.add_detail(base.fine.quantizer.lookup(fine), x_coarse)


def stage_model(base: Hierarchy) -> Hierarchy:
    """A Hierarchy over base's tokenizer whose fine side is the new stage (one codebook)."""
    return Hierarchy(base.tok, replace(base.fine.cfg, depth=1, synthesis_blocks=1, refine_width=0, own_decoder=False))


def train(args) -> None:
    torch.manual_seed(args.seed)
    base = read_hierarchy(args.state)[0].requires_grad_(False)
    model = stage_model(base)
    model.tok.requires_grad_(False)
    model.fine.train()
    opt = torch.optim.Adam(model.fine.parameters(), lr=args.lr, betas=(0.5, 0.9))
    lpips_model = load_lpips()
    data = CropDataset(os.pathsep.join(map(str, args.data)), 128, seed=args.seed, held_out_every=20, quiet=True)
    q = model.fine.quantizer
    restarter = DeadCodeRestarter(q.depth, q.codebooks.shape[1], q.codebooks.shape[2])
    budget, step, quantized, log = Budget(args.minutes, "cpu"), 0, False, []
    bar = tqdm(desc="stage", unit="step", file=sys.stderr, disable=args.quiet)

    def crops() -> FrozenPass:
        x = data.batch(8)
        features, z_coarse, under = picture_under(base, x)
        return FrozenPass(x, features, z_coarse, under)

    while budget.share() < 1:
        if not quantized and budget.share() >= 0.2:
            with torch.no_grad():
                zs = [model.fine.latent(c.features, c.x, c.x_coarse) for c in (crops() for _ in range(8))]
            kmeans_codebooks(q, torch.cat(zs))
            quantized = True
        schedule = min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * budget.share()))
        for group in opt.param_groups:
            group["lr"] = args.lr * schedule
        step += 1
        parts = train_step(model, opt, crops(), quantized, lpips_model, restarter, step)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
        if step % 10 == 0:
            log.append({"step": step, "cpu": round(budget.used(), 1), **{k: round(v, 5) for k, v in parts.items()}})
    bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.fine.state_dict().items()}, str(args.out / "stage.safetensors"))
    (args.out / "record.json").write_text(json.dumps({"state": str(args.state), "steps": step,
                                                      "cpu_seconds": round(budget.used(), 1), "args": {
                                                          k: str(v) for k, v in vars(args).items()}, "log": log}))


@torch.inference_mode()
def score(args) -> None:
    base = read_hierarchy(args.state)[0]
    model = stage_model(base)
    model.fine.load_state_dict(load_file(str(args.out / "stage.safetensors")))
    model.eval()
    record = json.loads((args.out / "record.json").read_text())
    lpips_model = load_lpips()
    results = {"state": str(args.state), "steps": record["steps"], "cpu_seconds": record["cpu_seconds"], "folders": {}}
    crops = []
    for folder in args.data:
        rows, indices = {}, []
        for rgb in tqdm([whole_tokens(a, base.tok) for a in held_out_pictures(folder)], desc=f"scoring {folder.name}",
                        file=sys.stderr, disable=args.quiet):
            x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])
            coarse, fine = base.encode(x)
            features, z_coarse, under = picture_under(base, x)
            z_stage = model.fine.latent(features, x, under)
            stage_indices = model.fine.quantizer.quantize(z_stage)[0]
            indices.append(stage_indices.numpy().ravel())
            pictures = {"3 + f8 x2": base.decode_indices(coarse, fine[:, :2]),
                        "3 + f8 x3": base.decode_indices(coarse, fine),
                        "3 + f8 x2 + stage": model.fine.add_detail(model.fine.quantizer.lookup(stage_indices), under),
                        "3 + f8 x2 + stage unquantized": model.fine.add_detail(z_stage, under)}
            reference = grid_ratio(rgb)
            outs = {name: to_pixels(picture.clamp(-1, 1))[0].permute(1, 2, 0).numpy() for name, picture in pictures.items()}
            if len(indices) == 1:
                crops.append((rgb, outs))
            for name, out in outs.items():
                lp = lpips_model(x, to_unit_range(torch.from_numpy(out).permute(2, 0, 1)[None])).item()
                rows.setdefault(name, []).append((psnr(rgb, out), ms_ssim(rgb, out), lp, grid_ratio(out) / reference))
        counts = np.bincount(np.concatenate(indices), minlength=model.fine.quantizer.codebooks.shape[1])
        p = counts[counts > 0] / counts.sum()
        results["folders"][folder.name] = {
            "images": len(indices), "stage_bits_per_index": round(float(-(p * np.log2(p)).sum()), 3),
            "rows": {name: {"psnr": round(float(np.mean([r[0] for r in v])), 3),
                            "ms_ssim": round(float(np.mean([r[1] for r in v])), 4),
                            "lpips": round(float(np.mean([r[2] for r in v])), 4),
                            "hatching": round(float(np.median([r[3] for r in v])), 3)} for name, v in rows.items()}}
    args.score.parent.mkdir(parents=True, exist_ok=True)
    args.score.with_suffix(".json").write_text(json.dumps(results, indent=1))
    crop_grid(crops, keys=tuple(crops[0][1])).save(args.score.with_name(args.score.name + "_crops.png"))
    print(json.dumps(results, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", type=Path, help="the hierarchy's lasting state under the stage (frozen)")
    ap.add_argument("data", type=Path, nargs="+", help="training folders (each keeps its every 20th picture out)")
    ap.add_argument("--out", type=Path, required=True, help="the stage's scratch folder")
    ap.add_argument("--minutes", type=float, default=60.0, help="CPU minutes of training")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", type=Path, default=None, help="score the trained stage into this path prefix")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    score(args) if args.score else train(args)


if __name__ == "__main__":
    main()
