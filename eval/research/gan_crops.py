"""The GAN comparison by eye: from each held-out picture, its most textured crop, reconstructed (no
entropy coding) by every checkpoint at the chosen levels, side by side under the original.

    python eval/research/gan_crops.py /work/runs/val eval/runs/vqgan-f16 /work/runs/gan02/state /work/runs/gan08/state \
        --names "no GAN" "projected GAN x0.2" "projected GAN x0.8" --levels 2 6 --out eval/results/gan_crops.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from compare_checkpoints import load
from vqcodec.bench import labelled_sheet
from vqcodec.images import image_files, to_rgb
from vqcodec.metrics import psnr
from vqcodec.tokenizer import to_pixels, to_unit_range


def most_textured(rgb: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the side x side window (on a side/4 lattice) with the most gradient energy."""
    grey = rgb.astype(np.float32).mean(2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    step = side // 4
    corners = [(y, x) for y in range(0, energy.shape[0] - side + 1, step)
               for x in range(0, energy.shape[1] - side + 1, step)]
    return max(corners, key=lambda c: energy[c[0]:c[0] + side, c[1]:c[1] + side].sum())


@torch.no_grad()
def reconstruct(model, rgb: np.ndarray, quality: int) -> np.ndarray:
    x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])
    return to_pixels(model.decode(model.encode(x, quality)))[0].permute(1, 2, 0).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pictures", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--names", nargs="+", default=None, help="A caption per checkpoint [default: folder names].")
    ap.add_argument("--levels", type=int, nargs="+", default=[2, 6])
    ap.add_argument("--images", type=int, nargs="+", default=[0, 3, 6, 9], help="Which pictures of the folder.")
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--out", type=Path, default=Path("eval/results/gan_crops.png"))
    args = ap.parse_args()
    names = args.names or [run.name for run in args.runs]
    if len(names) != len(args.runs):
        ap.error("give one name per checkpoint")
    models = [load(run)[0] for run in args.runs]
    files = image_files(args.pictures)
    cells, side = [], args.crop
    for picture in args.images:
        rgb = to_rgb(files[picture], colour_manage=False)
        f = max(m.cfg.downsample for m in models)  # whole tokens of every model's grid
        rgb = rgb[: rgb.shape[0] // f * f, : rgb.shape[1] // f * f]
        y, x = most_textured(rgb, side)
        for quality in args.levels:
            row = len({c[0] for c in cells})
            original = Image.fromarray(rgb[y:y + side, x:x + side])
            cells.append((row, 0, original, f"{files[picture].name} level {quality}"))
            for j, (name, model) in enumerate(zip(names, models), 1):
                out = reconstruct(model, rgb, quality)
                cells.append((row, j, Image.fromarray(out[y:y + side, x:x + side]),
                              f"{name}: {psnr(rgb, out):.2f} dB"))
    labelled_sheet(cells, (side, side)).save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
