"""A/B of the f16 decoder's upsampling on this machine: decode time per picture with each UpsampleConv
computed at the lower resolution (the shipped code) and as nearest upsampling then the 3x3 convolution
(the layers it replaced), alternating per picture so that both see the same load; also the largest
difference between their pictures, in 8-bit levels.

    python eval/upsample_ab.py ../shared/data/kodak --images 6 --level 4 --out eval/results/upsample_ab.md
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import vqcodec
from vqcodec.bench import machine_description
from vqcodec.images import image_files, to_rgb
from vqcodec.tokenizer import UpsampleConv

FUSED = UpsampleConv.forward


def upsample_then_convolve(self: UpsampleConv, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), self.weight, self.bias, padding=1)


def timed_decode(data: bytes, model, forward) -> tuple[float, np.ndarray]:
    UpsampleConv.forward = forward
    try:
        t0 = time.perf_counter()
        picture = np.asarray(vqcodec.decompress(data, model=model))
        return time.perf_counter() - t0, picture
    finally:
        UpsampleConv.forward = FUSED


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--level", type=int, default=None, help="quality level [default: the model's default]")
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    model = vqcodec.load_model(args.model)
    times = {"fused": [], "upsample then convolve": []}
    diff = 0
    for path in image_files(args.folder)[:args.images]:
        data = vqcodec.compress(to_rgb(path), args.level, model=model)
        timed_decode(data, model, FUSED)  # warm caches
        t_new, new = timed_decode(data, model, FUSED)
        t_old, old = timed_decode(data, model, upsample_then_convolve)
        times["fused"].append(t_new)
        times["upsample then convolve"].append(t_old)
        diff = max(diff, int(np.abs(new.astype(int) - old.astype(int)).max()))
    lines = [f"Decode time per picture, {args.images} pictures of {args.folder}, level {args.level or model.default_quality} "
             f"of {model.name}; {machine_description()}.", "",
             "| decoder upsampling | median s | min s | max s |", "|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} |" for name, t in times.items()]
    lines += ["", f"Largest difference between the two pictures: {diff} (8-bit levels)."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
