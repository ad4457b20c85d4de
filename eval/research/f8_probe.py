"""Scoring a finer grid for the upper levels (vqcodec/hierarchy.py: VQ-VAE-2's two-level hierarchy as a
residual coder on top of the f16 tokenizer) on each folder's held-out pictures: every f16 level, level 3
with each fine depth, and both unquantized, with PSNR / MS-SSIM / LPIPS, the hatching at the f16 grid's
period (hatching.py's measure, median over the pictures), a bpp estimate and crops.

Training is `vqcodec train hierarchy` (vqcodec/train/hierarchy.py); the probes of
eval/results/research/f8_probes.md were scratch folders of this script's earlier training mode, which it
still scores (--out).

    python eval/research/f8_probe.py eval/runs/vqgan-f16 ../shared/data/train ../shared/data/train_extra \
        --state eval/runs/vqgan-f16-f8 --score eval/results/research/f8_state
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file
from tqdm import tqdm

from hatching import grid_ratio  # eval/research/hatching.py, beside this script
from vqcodec.families import read_tokenizer
from vqcodec.metrics import load_lpips, ms_ssim, psnr
from vqcodec.hierarchy import FineConfig, Hierarchy, read_hierarchy
from vqcodec.tokenizer import to_pixels, to_unit_range
from vqcodec.train.heldout import held_out_pictures, whole_tokens
from vqcodec.train.state import has_state

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
            reference = grid_ratio(rgb)
            for k, out in pics.items():
                lp = lpips_model(x, to_unit_range(torch.from_numpy(out).permute(2, 0, 1)[None])).item()
                rows.setdefault(k, []).append((psnr(rgb, out), ms_ssim(rgb, out), lp, grid_ratio(out) / reference))
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
                         "hatching": round(float(np.median([v[3] for v in vals])), 3),
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
           "context model's); hatching: power at the 16-pixel grid's period over the original's (hatching.py; "
           "1 is none), median.\n"]
    for name, f in results["folders"].items():
        out.append(f"\n**{name}** ({f['images']} pictures; fine bits per index {f['fine_bits_per_index']})\n\n"
                   "| setting | PSNR / MS-SSIM / LPIPS | hatching | bpp estimate |\n|---|---|---|---|")
        for k, r in f["rows"].items():
            bpp = "" if r["bpp_estimate"] is None else f"{r['bpp_estimate']:.3f}"
            hatching = f"{r['hatching']:.2f}" if "hatching" in r else ""
            out.append(f"| {k} | {r['psnr']:.2f} / {r['ms_ssim']:.4f} / {r['lpips']:.4f} | {hatching} | {bpp} |")
    return "\n".join(out) + "\n"


CROP_KEYS = ("level 3", "level 6", "3 + f8 x1", "3 + f8 x2", "3 + f8 x3", "3 + f8 unquantized")


def crop_grid(crops: list, side: int = 160, keys: tuple[str, ...] = CROP_KEYS) -> Image.Image:
    """One row per folder: the original, then the settings named by keys (by default levels 3 and 6, the
    fine levels and the unquantized ones)."""
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
    ap.add_argument("tokenizer", type=Path, help="the f16 tokenizer under a scratch probe folder (--out)")
    ap.add_argument("data", type=Path, nargs="+", help="training folders (each keeps its own held-out pictures)")
    ap.add_argument("--out", type=Path, help="a scratch probe folder (probe.safetensors, record.json)")
    ap.add_argument("--state", type=Path, help="a hierarchy's lasting state (scored instead of --out)")
    ap.add_argument("--score", type=Path, required=True, help="write PATH.md, PATH.json and PATH_crops.png")
    ap.add_argument("--quiet", action="store_true")
    score(ap.parse_args())


if __name__ == "__main__":
    main()
