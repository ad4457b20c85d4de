"""Make the LPIPS weights vqcodec ships (vqcodec/weights/lpips/alex_v0.1.safetensors) from the fp32
safetensors file, and measure what the smaller file changes on Kodak.

The first two AlexNet convolutions, the linear layers and the scaling stay fp32; the other three
convolutions are stored in fp16. All-fp16 weights move LPIPS by up to 1.3e-4 on Kodak; this split keeps
every pair within 1e-4 at 5.6 MB instead of 9.9 MB.

    python eval/gpu/pack_lpips.py ../shared/weights/lpips_alex_v0.1.safetensors ../shared/data/kodak
"""
from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from vqcodec.images import image_files, to_rgb
from vqcodec.metrics import LPIPS_WEIGHTS_ENV, PACKAGED_LPIPS, load_lpips, lpips_distance

FULL_PRECISION = ("lin", "scaling_layer.", "net.slice1.", "net.slice2.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32", type=Path)
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--out", type=Path, default=PACKAGED_LPIPS)
    ap.add_argument("--report", type=Path, default=Path("eval/results/lpips_weights.md"))
    args = ap.parse_args()
    state = load_file(str(args.fp32))
    packed = {k: v if k.startswith(FULL_PRECISION) else v.half() for k, v in state.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(packed, str(args.out))
    os.environ[LPIPS_WEIGHTS_ENV] = str(args.fp32)
    full = load_lpips()
    os.environ[LPIPS_WEIGHTS_ENV] = str(args.out)
    small = load_lpips()
    diffs = []
    for path in image_files(args.kodak):
        rgb = to_rgb(path)
        for quality in (5, 30):
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
            out = np.asarray(Image.open(buf).convert("RGB"))
            with torch.no_grad():
                diffs.append(abs(lpips_distance(full, rgb, out) - lpips_distance(small, rgb, out)))
    report = (f"# The packaged LPIPS weights\n\n`python eval/gpu/pack_lpips.py {args.fp32} {args.kodak}`: "
              f"{args.out.name}, {args.out.stat().st_size:,} bytes (fp32 file: {args.fp32.stat().st_size:,}); "
              f"fp32 kept for {', '.join(FULL_PRECISION)}.\n\nLPIPS of the {len(diffs) // 2} Kodak images against "
              f"their JPEG (Pillow, quality 5 and 30), packaged weights against fp32: max |difference| "
              f"{max(diffs):.2e}, mean {np.mean(diffs):.2e}, over {len(diffs)} pairs.\n")
    args.report.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
