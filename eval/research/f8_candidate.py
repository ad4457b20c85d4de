"""A hierarchy's model folder against the shipped default on Kodak: rate-distortion curves (PSNR, MS-SSIM,
LPIPS against whole-file bpp) with the classical codecs of the last `vqcodec bench`, each averaged over
the images the candidate was scored on (from the per-image CSVs), a table, and crops of the pictures.

    python eval/research/f8_candidate.py eval/results/research/f8_candidate_kodak.csv \
        eval/results/vqc-v6/vqc-v6_kodak.csv eval/results/kodak/per_image.csv \
        --model /work/runs/cand --kodak ../shared/data/kodak --out eval/results/research/f8_candidate
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import vqcodec  # noqa: E402
from vqcodec.images import to_rgb  # noqa: E402

METRICS = (("psnr", "PSNR dB"), ("ms_ssim", "MS-SSIM"), ("lpips", "LPIPS (lower is better)"))
CLASSICAL = ("avif", "avif@1/2", "webp", "jpeg")
CROPS = (("kodim04.png", (170, 290)), ("kodim23.png", (300, 150)), ("kodim08.png", (250, 250)))  # (x, y) of a 192-px crop


def curves(path: Path, images: set[str] | None, codec: str | None = None) -> dict[str, list[dict]]:
    """{curve: [{bpp, psnr, ms_ssim, lpips} per level or setting]} averaged over `images` (None: all)."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f):
            if images is None or row["image"] in images:
                name = row.get("codec", codec)
                groups[(name, float(row.get("setting") or row["quality"]))].append(row)
    out: dict[str, list[dict]] = defaultdict(list)
    for (name, setting), rows in sorted(groups.items()):
        out[name].append({"setting": setting, "images": len(rows),
                          **{k: float(np.mean([float(r[k]) for r in rows])) for k in ("bpp", "psnr", "ms_ssim", "lpips")}})
    return out


def plot(candidate: list[dict], default: list[dict], default_name: str, bench: dict, images: int, out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (key, label) in zip(axes, METRICS):
        for name in CLASSICAL:
            rows = [r for r in bench.get(name, []) if r["bpp"] <= 0.6]
            ax.plot([r["bpp"] for r in rows], [r[key] for r in rows], "o-", ms=3, lw=1, alpha=0.6, label=name)
        for name, rows, style in ((default_name, default, "s-"), ("hierarchy candidate", candidate, "D-")):
            ax.plot([r["bpp"] for r in rows], [r[key] for r in rows], style, lw=2, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("bpp (whole file, log scale)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Kodak, {images} images: the hierarchy candidate (levels 4-6 on the f8 grid) against {default_name}")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def table(candidate: list[dict], default: list[dict], default_name: str, bench: dict) -> str:
    lines = ["| curve | level / setting | bpp | PSNR dB | MS-SSIM | LPIPS |", "|---|---|---|---|---|---|"]
    for name, rows in (("hierarchy candidate", candidate), (default_name, default),
                       *((c, [r for r in bench.get(c, []) if r["bpp"] <= 0.6]) for c in ("avif", "avif@1/2"))):
        for r in rows:
            lines.append(f"| {name} | {r['setting']:g} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} | "
                         f"{r['lpips']:.4f} |")
    return "\n".join(lines) + "\n"


def crops(model: str, default: str, kodak: Path, out: Path, side: int = 192) -> None:
    """One row per picture: original, the default at its top level, the candidate at level 3 and 4 and 6."""
    cand, base = vqcodec.load_model(model), vqcodec.load_model(default)
    columns = [("default", base, base.levels), ("candidate", cand, 3), ("candidate", cand, 4), ("candidate", cand, 6)]
    grid = Image.new("RGB", ((len(columns) + 1) * (side + 4), len(CROPS) * (side + 16)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (name, (x, y)) in enumerate(CROPS):
        rgb = to_rgb(kodak / name)
        panels = [("original", rgb)]
        for label, m, q in columns:
            data = vqcodec.compress(rgb, q, m)
            bpp = 8 * len(data) / (rgb.shape[0] * rgb.shape[1])
            panels.append((f"{label} L{q} {bpp:.3f} bpp", np.asarray(vqcodec.decompress(data, m))))
        for c, (label, a) in enumerate(panels):
            grid.paste(Image.fromarray(np.ascontiguousarray(a[y:y + side, x:x + side])), (c * (side + 4), r * (side + 16) + 14))
            draw.text((c * (side + 4) + 2, r * (side + 16)), label, fill="black")
    grid.save(out.with_name(out.name + "_crops.png"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("candidate", type=Path, help="kodak_levels.py's per-image CSV for the candidate")
    ap.add_argument("default", type=Path, help="kodak_levels.py's per-image CSV for the shipped default")
    ap.add_argument("bench", type=Path, help="vqcodec bench's per_image.csv (the classical codecs)")
    ap.add_argument("--model", required=True, help="the candidate's model folder (for the crops)")
    ap.add_argument("--default-model", default="vqc-v6")
    ap.add_argument("--kodak", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    candidate = curves(args.candidate, None, "candidate")["candidate"]
    with open(args.candidate) as f:
        images = {row["image"] for row in csv.DictReader(f)}
    default = curves(args.default, images, "default")["default"]
    bench = curves(args.bench, images)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(candidate, default, args.default_model, bench, len(images), args.out)
    args.out.with_suffix(".md").write_text(f"Kodak, the {len(images)} images {', '.join(sorted(images))}; means over "
                                           "them, whole-file bpp.\n\n" + table(candidate, default, args.default_model, bench))
    crops(args.model, args.default_model, args.kodak, args.out)


if __name__ == "__main__":
    main()
