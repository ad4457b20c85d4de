"""Where a tokenizer's quality stops: its reconstructions at every quality level beside the decoder fed
the encoder's unquantized latent (no quantizer at all), on a folder of pictures (the held-out ones,
eval/heldout_set.py). When the top levels reach the unquantized score, more depths cannot help: the
encoder and decoder, not the codebooks, cap the picture.

    python eval/research/latent_ceiling.py /work/runs/val vqcodec/weights/vqc-v3 vqcodec/weights/vqc-v4 eval/runs/vqgan-f16 \
        --json eval/results/latent_ceiling.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from compare_checkpoints import load
from vqcodec.images import image_files, to_rgb
from vqcodec.metrics import load_lpips, ms_ssim, psnr
from vqcodec.tokenizer import to_pixels, to_unit_range
from vqcodec.train.heldout import whole_tokens


@torch.inference_mode()
def ceiling(model, pictures: list[np.ndarray], lpips_model, decode=None) -> list[dict]:
    """Mean PSNR, MS-SSIM, LPIPS and relative latent error ‖z - z_q‖² / ‖z‖² per level, then for the
    unquantized latent (level "latent"). decode: latent -> image in [-1, 1] (default: the model's decoder)."""
    decode = decode or model.decoder
    depth = model.cfg.depth
    scores = {level: [] for level in [*range(1, depth + 1), "latent"]}
    for rgb in pictures:
        rgb = whole_tokens(rgb, model)
        x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])
        z = model.latent(x)                                   # (1, D, h, w)
        indices = model.quantize_latent(z, depth)             # (1, depth, h, w)
        latents = {q: model.quantizer.lookup(indices[:, :q]) for q in range(1, depth + 1)} | {"latent": z}
        for level, z_q in latents.items():
            out = to_pixels(decode(z_q).clamp(-1, 1))
            perceptual = lpips_model(x, to_unit_range(out)).item()
            out = out[0].permute(1, 2, 0).numpy()
            error = float(((z - z_q) ** 2).sum() / (z ** 2).sum())
            scores[level].append((psnr(rgb, out), ms_ssim(rgb, out), perceptual, error))
    rows = []
    for level, values in scores.items():
        p, m, l, e = np.mean(values, 0)
        rows.append({"level": level, "psnr": round(float(p), 3), "ms_ssim": round(float(m), 4),
                     "lpips": round(float(l), 4), "latent_error": round(float(e), 4)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pictures", type=Path)
    ap.add_argument("models", type=Path, nargs="+", help="Model folders, run folders or lasting states.")
    ap.add_argument("--images", type=int, default=13)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    lpips_model = load_lpips()
    pictures = [to_rgb(p, colour_manage=False) for p in image_files(args.pictures)[: args.images]]
    results = {}
    print("| model | step | level | PSNR dB | MS-SSIM | LPIPS | latent error |\n|---|---|---|---|---|---|---|")
    for folder in args.models:
        model, step = load(folder)
        rows = ceiling(model, pictures, lpips_model)
        results[str(folder)] = {"step": step, "images": len(pictures), "levels": rows}
        for r in rows:
            print(f"| {folder} | {step} | {r['level']} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} | {r['lpips']:.4f} | "
                  f"{r['latent_error']:.4f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
