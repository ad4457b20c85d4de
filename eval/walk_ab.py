"""A/B of the decoder's walk of the coarse prior on this machine: whole-file decode time per picture with
the walk on torch tensors and on numpy arrays (`IntPrior.on_host`, what `decompress` uses on a CPU),
alternating per picture so that both see the same load. Both must give the same grid, which the file's
checksum verifies on every decode, and the same picture (checked here).

    python eval/walk_ab.py ../shared/data/kodak --images 6 --levels 1,6 --out eval/results/walk_ab.md
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import vqcodec
from vqcodec.bench import machine_description
from vqcodec.images import image_files, to_rgb
from vqcodec.intprior import IntPrior


def timed_decode(data: bytes, model, host: bool) -> tuple[float, np.ndarray]:
    on_host = IntPrior.on_host
    if not host:
        IntPrior.on_host = lambda prior: prior  # the walk then runs on the prior's torch tensors
    try:
        t0 = time.perf_counter()
        image = vqcodec.decompress(data, model=model)
        return time.perf_counter() - t0, np.asarray(image)
    finally:
        IntPrior.on_host = on_host


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--levels", default="1,6")
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    model = vqcodec.load_model(args.model)
    levels = [int(q) for q in args.levels.split(",")]
    kinds = {"torch tensors": False, "numpy arrays (host twin)": True}
    times = {(q, k): [] for q in levels for k in kinds}
    for path in image_files(args.folder)[:args.images]:
        rgb = to_rgb(path)
        for q in levels:
            data, pictures = vqcodec.compress(rgb, q, model=model), []
            for name, host in kinds.items():
                seconds, picture = timed_decode(data, model, host)
                times[q, name].append(seconds)
                pictures.append(picture)
            assert np.array_equal(*pictures), f"{path.name} level {q}: the two walks gave different pictures"
    lines = [f"Decode time with the coarse prior walked on torch tensors or numpy arrays, {model.name}, first "
             f"{args.images} pictures of {args.folder.name}, {machine_description()}; the same pictures both ways.\n",
             "| level | walk on | decode s (median, min–max) |", "|---|---|---|"]
    for (q, name), t in times.items():
        lines.append(f"| {q} | {name} | {statistics.median(t):.2f} ({min(t):.2f}–{max(t):.2f}) |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
