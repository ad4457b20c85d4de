"""Probe and lasting run: a finer grid for the upper levels (vqcodec/hierarchy.py: VQ-VAE-2's two-level
hierarchy as a residual coder on top of the f16 tokenizer).

Levels 1-3 stay the f16 codes. Levels above 3 add residual codes on an f8 grid (four positions per f16
position) that carry what the f16 decoder's level-3 picture misses; a small synthesis adds that detail
back. The f16 tokenizer stays frozen (grids and prior stay valid for levels 1-3). The fine latent trains
unquantized first (its codebooks then start from k-means on what it has learnt to carry), then through
its own residual codebooks. The learning rate follows a cosine over the CPU-time budget, so probes
compare at equal CPU time.

    python eval/research/f8_probe.py eval/runs/vqgan-f16 ../shared/data/train ../shared/data/train_extra \
        --out /work/probes/f8 --cpu-minutes 60
    python eval/research/f8_probe.py eval/runs/vqgan-f16 ../shared/data/train ../shared/data/train_extra \
        --out /work/probes/f8 --score eval/results/research/f8_probe
    python eval/research/f8_probe.py eval/runs/vqgan-f16 ../shared/data/train ../shared/data/train_extra \
        --resume eval/runs/vqgan-f16-f8 --state eval/runs/vqgan-f16-f8 --cpu-minutes 140
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vqcodec.families import config_dict, read_tokenizer
from vqcodec.metrics import load_lpips, ms_ssim, psnr
from vqcodec.hierarchy import FineConfig, Hierarchy, read_hierarchy
from vqcodec.tokenizer import ResidualQuantizer, to_pixels, to_unit_range
from vqcodec.train.data import CropDataset
from vqcodec.train.heldout import held_out_pictures, whole_tokens
from vqcodec.train.state import has_state, read_record, save_state
from vqcodec.train.tokenizer import DeadCodeRestarter

COARSE_LEVELS = 3  # f16 depths under every fine level
PRIOR_BITS = (7.29, 8.00, 8.38, 8.61, 8.71, 8.78)  # vqc-v6's prior: held-out bits per index of level L's grids,
                                                   # averaged over its L depths (training.md)


def load_probe(tokenizer: Path, folder: Path | None) -> tuple[Hierarchy, dict]:
    """The hierarchy in `folder` (a lasting state of it, or a scratch probe folder over `tokenizer`), or a
    fresh one over `tokenizer` when folder is None or empty."""
    if folder is not None and has_state(folder):
        return read_hierarchy(folder)
    record = {}
    if folder is not None and (folder / "record.json").is_file():
        record = json.loads((folder / "record.json").read_text())
    model = Hierarchy(read_tokenizer(tokenizer)[0].eval(), FineConfig())
    if record:
        model.load_state_dict(load_file(str(folder / "probe.safetensors")), strict=False)
    return model.eval(), record


def save_probe(model: Hierarchy, folder: Path, record: dict) -> None:
    """Scratch: the trained parts in fp32."""
    folder.mkdir(parents=True, exist_ok=True)
    keep = {k: v.contiguous() for k, v in model.state_dict().items()
            if k.startswith("fine.")}
    save_file(keep, str(folder / "probe.safetensors"))
    (folder / "record.json").write_text(json.dumps(record, indent=1))


@torch.no_grad()
def kmeans(quantizer: ResidualQuantizer, z: torch.Tensor, iters: int = 10) -> None:
    """Codebooks from k-means on the fine latents (B, dim, H, W), depth by depth on the residuals."""
    r = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    K = quantizer.codebooks.shape[1]
    for d in range(quantizer.depth):
        centers = r[torch.randint(len(r), (K,))].clone()
        for _ in range(iters):
            assign = torch.cdist(r, centers).argmin(1)
            sums = torch.zeros_like(centers).index_add_(0, assign, r)
            counts = torch.bincount(assign, minlength=K).float()
            centers[counts > 0] = sums[counts > 0] / counts[counts > 0, None]
        quantizer.codebooks.data[d] = centers
        r = r - centers[torch.cdist(r, centers).argmin(1)]


def train(args) -> None:
    torch.manual_seed(args.seed)
    model, record = load_probe(args.tokenizer, args.resume)
    model.tok.requires_grad_(False)
    opt = torch.optim.Adam(model.fine.parameters(), lr=args.lr, betas=(0.5, 0.9))
    lpips_model = load_lpips()
    data = CropDataset(os.pathsep.join(map(str, args.data)), 128, seed=args.seed, held_out_every=20)
    restarter = DeadCodeRestarter(model.fine.quantizer.depth, model.fine.quantizer.codebooks.shape[1],
                                  model.fine.quantizer.codebooks.shape[2])
    budget, start, step, log, quantized = args.cpu_minutes * 60, time.process_time(), 0, [], bool(record)
    steps_before = record.get("step", record.get("steps", 0))  # a lasting state's "step", a probe folder's "steps"
    done = {"step": steps_before, "train_pixels": record.get("train_pixels", steps_before * 8 * 128 * 128),
            "cpu_seconds": record.get("cpu_seconds", 0.0)}
    base = read_record(args.tokenizer) if has_state(args.tokenizer) else {}
    ancestor = record.get("ancestor") or {"state": str(args.tokenizer), "step": base.get("step"),
                                          "train_pixels": base.get("train_pixels"), "cpu_seconds": base.get("cpu_seconds")}
    # A probe folder continued as a lasting state: the probe is the state's first stretch.
    stretches = record.get("stretches") or ([{"from_step": 0, "to_step": steps_before,
                                              "args": record.get("args", {})}] if steps_before else [])
    bar = tqdm(desc="f8 probe", unit="step", file=sys.stderr, disable=args.quiet)
    model.train()
    while (used := time.process_time() - start) < budget:
        if not quantized and used >= args.unquantized_share * budget:  # the fine codebooks start now
            with torch.no_grad():
                zs = []
                for _ in range(8):
                    x = data.batch(8)
                    feats, z = model.coarse(x)
                    idx = model.tok.quantizer.quantize(z)[0][:, :COARSE_LEVELS]
                    zs.append(model.fine_latent(feats, x, model.tok.quantizer.lookup(idx))[0])
                kmeans(model.fine.quantizer, torch.cat(zs))
            quantized = True
        scale = min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * used / budget))
        for g in opt.param_groups:
            g["lr"] = args.lr * scale
        x = data.batch(8)
        with torch.no_grad():
            feats, z = model.coarse(x)
            _, codes, _ = model.tok.quantizer.quantize(z)
        # the f16 levels are untouched, so every crop trains a fine level on f16 level 3
        fine_depth = torch.randint(1, model.fine.quantizer.depth + 1, (8,))
        z_coarse = codes[:, :COARSE_LEVELS].sum(1)
        z_fine, x_coarse = model.fine_latent(feats, x, z_coarse)
        vq_loss = torch.zeros(())
        if quantized:
            idx, fcodes, resid = model.fine.quantizer.quantize(z_fine)
            vq_loss = F.mse_loss(fcodes, resid.detach()) + 0.25 * F.mse_loss(resid, fcodes.detach())
            fkeep = (torch.arange(model.fine.quantizer.depth)[None] < fine_depth[:, None]).float()
            z_q = (fcodes.detach() * fkeep[:, :, None, None, None]).sum(1)
            z_fine = z_fine + (z_q - z_fine).detach()
            restarter.observe(idx, resid.detach())
        rec = model.decode(z_coarse, z_fine, x_coarse)
        l1, perceptual = (rec - x).abs().mean(), lpips_model(rec, x).mean()
        loss = l1 + perceptual + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if quantized and step % 200 == 0 and restarter.filled:
            restarter.restart(model.fine.quantizer.codebooks)
        bar.update(1)
        bar.set_postfix(l1=f"{l1.item():.3f}", lpips=f"{perceptual.item():.3f}", vq=f"{vq_loss.item():.4f}")
        if step % 10 == 0:
            log.append({"step": done["step"] + step, "cpu": round(done["cpu_seconds"] + used, 1), "l1": round(l1.item(), 4),
                        "lpips": round(perceptual.item(), 4), "vq": round(vq_loss.item(), 5), "quantized": quantized})
        if args.state and (step % 100 == 0 or time.process_time() - start >= budget):
            cpu = round(done["cpu_seconds"] + time.process_time() - start, 1)
            save_state(args.state, {"model": model.tok, "fine": model.fine}, {
                "step": done["step"] + step, "train_pixels": done["train_pixels"] + step * x.numel() // 3,
                "cpu_seconds": cpu, "ancestor": ancestor, "model": config_dict(model.tok.cfg),
                "fine": model.fine.cfg.to_dict(),
                "stretches": stretches + [{"from_step": done["step"], "to_step": done["step"] + step,
                                           "args": {k: str(v) for k, v in vars(args).items()}}],
                "log": record.get("log", []) + log})
        elif not args.state and (step % 100 == 0 or time.process_time() - start >= budget):
            save_probe(model, args.out, {"steps": step, "cpu_seconds": round(time.process_time() - start, 1),
                                         "quantized_from_cpu_s": round(args.unquantized_share * budget, 1),
                                         "tokenizer": str(args.tokenizer),
                                         "args": {k: str(v) for k, v in vars(args).items()}, "log": log})
    bar.close()


def entropy_bits(indices: np.ndarray, K: int) -> float:
    """Empirical bits per index of one depth's indices (no context: an upper bound for a prior)."""
    p = np.bincount(indices.ravel(), minlength=K) / indices.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@torch.inference_mode()
def reconstructions(model: Hierarchy, rgb: np.ndarray) -> tuple[dict, list[np.ndarray]]:
    """Every setting's picture (uint8 HxWx3) and the fine indices per depth."""
    x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])
    feats, z = model.coarse(x)
    q = model.tok.quantizer
    idx = q.quantize(z)[0]
    base = q.lookup(idx[:, :COARSE_LEVELS])
    z_fine, x_coarse = model.fine_latent(feats, x, base)
    fidx = model.fine.quantizer.quantize(z_fine)[0]
    settings = {f"level {L}": (q.lookup(idx[:, :L]), None) for L in range(1, q.depth + 1)}
    settings |= {f"3 + f8 x{d}": (base, model.fine.quantizer.lookup(fidx[:, :d]))
                 for d in range(1, model.fine.quantizer.depth + 1)}
    settings |= {"3 + f8 unquantized": (base, z_fine), "f16 unquantized": (z, None)}
    pics = {k: to_pixels(model.decode(zc, zf, x_coarse if zc is base else None).clamp(-1, 1))[0].permute(1, 2, 0).numpy()
            for k, (zc, zf) in settings.items()}
    return pics, [fidx[0, d].numpy() for d in range(fidx.shape[1])]


def level_bpp(fine_bits: list[float], f: int) -> dict[str, float]:
    """Estimated bits per pixel of each setting: level L's f16 grid at L x PRIOR_BITS[L-1] per position,
    f8 depths at fine_bits per index (four positions per f16 position)."""
    out = {f"level {L}": L * PRIOR_BITS[L - 1] / f ** 2 for L in range(1, len(PRIOR_BITS) + 1)}
    coarse = out[f"level {COARSE_LEVELS}"]
    out |= {f"3 + f8 x{d}": coarse + sum(fine_bits[:d]) / (f // 2) ** 2 for d in range(1, len(fine_bits) + 1)}
    return {k: round(v, 4) for k, v in out.items()}


def score(args) -> None:
    model, record = load_probe(args.tokenizer, args.state or args.out)
    lpips_model = load_lpips()
    results = {"steps": record.get("steps", record.get("step", 0)), "cpu_seconds": record.get("cpu_seconds", 0.0), "folders": {}}
    crops = []
    for folder in args.data:
        pictures = [whole_tokens(a, model.tok) for a in held_out_pictures(folder)]
        rows, fine_indices = {}, []
        for n, rgb in enumerate(tqdm(pictures, desc=f"scoring {folder.name}", file=sys.stderr, disable=args.quiet)):
            pics, fidx = reconstructions(model, rgb)
            fine_indices.append(fidx)
            x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])
            for k, out in pics.items():
                lp = lpips_model(x, to_unit_range(torch.from_numpy(out).permute(2, 0, 1)[None])).item()
                rows.setdefault(k, []).append((psnr(rgb, out), ms_ssim(rgb, out), lp))
            if n == 0:
                crops.append((rgb, pics))
        K = model.fine.quantizer.codebooks.shape[1]
        fine_bits = [entropy_bits(np.concatenate([f[d].ravel() for f in fine_indices]), K)
                     for d in range(model.fine.quantizer.depth)]
        bpp = level_bpp(fine_bits, model.tok.cfg.downsample)
        results["folders"][folder.name] = {
            "images": len(pictures), "fine_bits_per_index": [round(b, 3) for b in fine_bits],
            "rows": {k: {"psnr": round(float(np.mean([v[0] for v in vals])), 3),
                         "ms_ssim": round(float(np.mean([v[1] for v in vals])), 4),
                         "lpips": round(float(np.mean([v[2] for v in vals])), 4),
                         "bpp_estimate": bpp.get(k)}
                     for k, vals in rows.items()}}
    args.score.parent.mkdir(parents=True, exist_ok=True)
    args.score.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    args.score.with_suffix(".md").write_text(markdown(results))
    crop_grid(crops).save(args.score.with_name(args.score.name + "_crops.png"))
    print(markdown(results))


def markdown(results: dict) -> str:
    out = [f"f8 probe after {results['steps']} steps, {results['cpu_seconds']} CPU-s. PSNR dB / MS-SSIM / LPIPS "
           "on each folder's held-out pictures; bpp estimates: f16 depths at vqc-v6's prior's held-out bits per "
           "index, f8 depths at their indices' empirical entropy (no context; f8_context_bits.py gives a "
           "context model's).\n"]
    for name, f in results["folders"].items():
        out.append(f"\n**{name}** ({f['images']} pictures; fine bits per index {f['fine_bits_per_index']})\n\n"
                   "| setting | PSNR / MS-SSIM / LPIPS | bpp estimate |\n|---|---|---|")
        for k, r in f["rows"].items():
            bpp = "" if r["bpp_estimate"] is None else f"{r['bpp_estimate']:.3f}"
            out.append(f"| {k} | {r['psnr']:.2f} / {r['ms_ssim']:.4f} / {r['lpips']:.4f} | {bpp} |")
    return "\n".join(out) + "\n"


def crop_grid(crops: list, side: int = 160) -> Image.Image:
    """One row per folder: the original, then levels 3 and 6, the fine levels and the unquantized ones."""
    keys = ["level 3", "level 6", "3 + f8 x1", "3 + f8 x2", "3 + f8 x3", "3 + f8 unquantized"]
    grid = Image.new("RGB", ((len(keys) + 1) * (side + 4), len(crops) * (side + 16)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (rgb, pics) in enumerate(crops):
        y, x = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
        for c, (label, a) in enumerate([("original", rgb)] + [(k, pics[k]) for k in keys]):
            grid.paste(Image.fromarray(np.ascontiguousarray(a[y:y + side, x:x + side])), (c * (side + 4), r * (side + 16) + 14))
            draw.text((c * (side + 4) + 2, r * (side + 16)), label, fill="black")
    return grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tokenizer", type=Path, help="model folder or lasting state: its encoder and codebooks stay frozen")
    ap.add_argument("data", type=Path, nargs="+", help="training folders (each keeps its own held-out pictures)")
    ap.add_argument("--out", type=Path, help="a scratch probe folder (probe.safetensors, record.json)")
    ap.add_argument("--state", type=Path, help="write a lasting state (fp16 + state.json) here instead of --out")
    ap.add_argument("--resume", type=Path, help="continue from this lasting state of the hierarchy (a warm restart)")
    ap.add_argument("--cpu-minutes", type=float, default=60.0)
    ap.add_argument("--lr", type=float, default=2e-4, help="the fine side's learning rate")
    ap.add_argument("--unquantized-share", type=float, default=0.2,
                    help="share of the budget the fine latent trains unquantized before its codebooks start")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", type=Path, help="score the probe in --out instead of training; write PATH.{md,json}")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    score(args) if args.score else train(args)


if __name__ == "__main__":
    main()
