"""The README's completion grid: scikit-image's coffee photo (not Kodak), 256 x 256 (one prior window),
kept top half and kept left half, four completions each, beside the original and what the codec keeps.

    python eval/completions.py --out eval/results/completions.png
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

import vqcodec
from vqcodec.bench import labelled_sheet, machine_description


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("eval/results/completions.png"))
    ap.add_argument("-n", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top-k", type=int, default=100)
    args = ap.parse_args()
    photo = np.ascontiguousarray(skdata.coffee()[100:356, 200:456])
    rows, notes = [], []
    for keep in ("top:0.5", "left:0.5"):
        t0 = time.perf_counter()
        done = vqcodec.complete(photo, keep=keep, n=args.n, seed=args.seed, top_k=args.top_k, progress=True)
        notes.append(f"{keep}: {args.n} completions in {time.perf_counter() - t0:.1f} s")
        rows.append((keep, [Image.fromarray(photo), vqcodec.reconstruct(photo), *done]))
    captions = ["original", "reconstruct (level 2)"] + [f"seed {args.seed}, #{k + 1}" for k in range(args.n)]
    cells = [(i, j, picture, captions[j] if j < 2 else f"keep {keep}, {captions[j]}")
             for i, (keep, pictures) in enumerate(rows) for j, picture in enumerate(pictures)]
    labelled_sheet(cells, (256, 256)).save(args.out, optimize=True)
    print(f"{args.out}; " + "; ".join(notes) + f"; {machine_description()}")


if __name__ == "__main__":
    main()
