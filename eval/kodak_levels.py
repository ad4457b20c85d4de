"""Kodak evaluation of a vqcodec model at every quality level: whole-file bpp, PSNR, LPIPS, encode
and decode seconds, and bits per token with the prior against uniform coding (a hierarchy's fine
levels count their fine tokens too; codebook use is the coarse codebooks').

    VQCODEC_LPIPS_WEIGHTS=../shared/weights/lpips_alex_v0.1.safetensors \
        python eval/kodak_levels.py ../shared/data/kodak --out eval/results/vqc-v6 --model vqc-v6
"""
from __future__ import annotations

import argparse
import json
import lzma
import zlib
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import vqcodec
from vqcodec.bench import machine_description, write_csv
from vqcodec.images import to_rgb
from vqcodec.metrics import load_lpips, lpips_distance, ms_ssim, psnr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--out", type=Path, default=Path("eval/results"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--name", default=None, help="results go to OUT/NAME_kodak.{csv,json} and NAME_kodak_table.md "
                    "(default: the model's name)")
    args = ap.parse_args()

    model = vqcodec.load_model(args.model)
    args.name = args.name or model.name
    lp = load_lpips()
    files = sorted(args.kodak.glob("*.png"))
    rows = []
    usage = {q: np.zeros((min(q, model.coarse_levels), model.codebook_size), np.int64)
             for q in range(1, model.levels + 1)}
    for path in tqdm(files, desc="kodak"):
        rgb = to_rgb(path)
        h, w = rgb.shape[:2]
        for q in range(1, model.levels + 1):
            t0 = time.perf_counter()
            data = vqcodec.compress(rgb, quality=q, model=model)
            t1 = time.perf_counter()
            out = np.asarray(vqcodec.decompress(data, model=model))
            t2 = time.perf_counter()
            uniform = vqcodec.compress(rgb, quality=q, model=model, coder="uniform")
            header, grid, _ = vqcodec.codec.decode_grid(uniform, model)
            for d in range(grid.indices.shape[0]):
                usage[q][d] += np.bincount(grid.indices[d].ravel(), minlength=model.codebook_size)
            fine = np.zeros(0, np.int64) if grid.fine is None else grid.fine.ravel()
            tokens = grid.indices.size + fine.size
            raw = np.ascontiguousarray(np.concatenate([grid.indices.ravel(), fine]), dtype="<u2").tobytes()
            rows.append({
                "image": path.name, "quality": q, "width": w, "height": h, "tokens": tokens,
                "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                "payload_bits_per_token": 8 * (len(data) - 25) / tokens,
                "uniform_bytes": len(uniform), "uniform_payload_bits_per_token": 8 * (len(uniform) - 25) / tokens,
                "zlib_bits_per_token": 8 * len(zlib.compress(raw, 9)) / tokens,
                "lzma_bits_per_token": 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / tokens,
                "psnr": psnr(rgb, out), "ms_ssim": ms_ssim(rgb, out), "lpips": lpips_distance(lp, rgb, out),
                "encode_s": t1 - t0, "decode_s": t2 - t1,
            })
    write_csv(rows, args.out / f"{args.name}_kodak.csv")
    summary = []
    for q in range(1, model.levels + 1):
        r = [x for x in rows if x["quality"] == q]
        mean = lambda k: float(np.mean([x[k] for x in r]))  # noqa: E731
        counts = usage[q]
        p = counts / counts.sum(1, keepdims=True)
        perplexity = np.exp(-(np.where(p > 0, p * np.log(np.maximum(p, 1e-300)), 0)).sum(1))
        summary.append({"quality": q, **{k: mean(k) for k in (
            "bpp", "psnr", "ms_ssim", "lpips", "encode_s", "decode_s", "payload_bits_per_token", "uniform_payload_bits_per_token",
            "zlib_bits_per_token", "lzma_bits_per_token")},
            "log2K": float(np.log2(model.codebook_size)),
            "codebook_usage": [float((c > 0).mean()) for c in counts],
            "codebook_perplexity": [float(x) for x in perplexity]})
    machine = machine_description()
    meta = {"model": model.name, "model_id": model.model_id.hex(), "images": len(files), "data": str(args.kodak),
            "machine": machine, "summary": summary}
    (args.out / f"{args.name}_kodak.json").write_text(json.dumps(meta, indent=1) + "\n")
    lines = ["| level | bpp | PSNR dB | MS-SSIM | LPIPS | encode s | decode s | bits/token prior | uniform | zlib | lzma "
             "| prior/uniform | codebook use |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['quality']} | {s['bpp']:.4f} | {s['psnr']:.2f} | {s['ms_ssim']:.3f} | {s['lpips']:.3f} | {s['encode_s']:.2f} | "
                     f"{s['decode_s']:.2f} | {s['payload_bits_per_token']:.2f} | {s['uniform_payload_bits_per_token']:.2f} | "
                     f"{s['zlib_bits_per_token']:.2f} | {s['lzma_bits_per_token']:.2f} | "
                     f"{s['payload_bits_per_token'] / s['uniform_payload_bits_per_token']:.1%} | "
                     f"{min(s['codebook_usage']):.0%}–{max(s['codebook_usage']):.0%} |")
    (args.out / f"{args.name}_kodak_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
