"""A/B of the integer prior's GEMMs on this machine: encode and decode time per picture with the linear
layers as int8 GEMMs (int32 sums) and as exact float32 GEMMs, alternating per picture so that both see the
same load. Both give the same files (the test suite checks it; so does this script).

    python eval/gemm_ab.py ../shared/data/kodak --images 6 --model vqc-v6 --out eval/results/gemm_ab.md
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import vqcodec
from vqcodec.bench import machine_description
from vqcodec.exact import int8_gemm_available
from vqcodec.images import image_files, to_rgb


def timed(rgb, quality: int, model) -> tuple[float, float, bytes]:
    t0 = time.perf_counter()
    data = vqcodec.compress(rgb, quality, model=model)
    t1 = time.perf_counter()
    vqcodec.decompress(data, model=model)
    return t1 - t0, time.perf_counter() - t1, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--quality", type=int, default=6)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if not int8_gemm_available():
        raise SystemExit("this torch has no int8 GEMM on the CPU: nothing to compare")
    model = vqcodec.load_model(args.model)
    kinds = {"int8 GEMM, int32 sums": torch.int32, "float32 GEMM": torch.float32}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    for path in image_files(args.folder)[:args.images]:
        rgb, files = to_rgb(path), set()
        for name, accumulate in kinds.items():
            model.prior._set_gemm_weights(accumulate)
            encode, decode, data = timed(rgb, args.quality, model)
            times[name].append((encode, decode))
            files.add(data)
        assert len(files) == 1, f"{path.name}: the two GEMMs gave different files"
    lines = [f"Integer prior GEMMs, {model.name} level {args.quality}, first {args.images} pictures of "
             f"{args.folder.name}, {machine_description()}; same files both ways.\n",
             "| GEMM | encode s (median, min–max) | decode s (median, min–max) |", "|---|---|---|"]
    for name, t in times.items():
        enc, dec = [e for e, _ in t], [d for _, d in t]
        lines.append(f"| {name} | {statistics.median(enc):.2f} ({min(enc):.2f}–{max(enc):.2f}) | "
                     f"{statistics.median(dec):.2f} ({min(dec):.2f}–{max(dec):.2f}) |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
