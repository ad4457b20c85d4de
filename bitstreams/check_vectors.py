"""Decode every reference vector under every arithmetic setting this machine offers and compare the
index grids with the recorded SHA-256 (and the pixels with the recorded PNG, within +-1): torch threads
1 and all, int8 (int32 accumulation), float32 and float64 GEMMs, and CUDA when a GPU is present. Prints a Markdown
table for bitstreams/README.md; exits non-zero on any mismatch.

    python bitstreams/check_vectors.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vqcodec
from vqcodec.codec import as_given, decode_grid, detokenize
from vqcodec.bench import machine_description
from vqcodec.exact import int8_gemm_available
from vqcodec.intprior import IntPrior

VECTORS = Path(__file__).parent / "vectors"


def settings() -> list[tuple[str, str, int, torch.dtype]]:
    threads = sorted({1, torch.get_num_threads()})
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    accumulations = {"cpu": ([torch.int32] if int8_gemm_available() else []) + [torch.float32, torch.float64],
                     "cuda": [torch.float32, torch.float64]}
    return [(f"{device}, {n} thread{'s' * (n > 1)}, {str(acc).removeprefix('torch.')}", device, n, acc)
            for device in devices for n in threads for acc in accumulations[device]]


def main() -> int:
    record = json.loads((VECTORS / "vectors.json").read_text())
    all_threads, failures = torch.get_num_threads(), 0
    print(f"machine: {machine_description()}" + (f", GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print("\n| setting | " + " | ".join(record) + " |\n|---|" + "---|" * len(record))
    for label, device, threads, acc in settings():
        torch.set_num_threads(threads)
        models = {name: vqcodec.load_model(name, device) for name in {e["pixels_by"] for e in record.values()}}
        shipped = {name: model.prior for name, model in models.items()}
        for model in models.values():
            model.prior = IntPrior(model.prior.cfg, model.prior.t, accumulate=acc).to(device)
        cells = []
        for entry in record.values():
            model = models[entry["pixels_by"]]  # the shipped model that decodes it
            data = (VECTORS / entry["file"]).read_bytes()
            header, grid, _ = decode_grid(data, model, device)
            same_grid = hashlib.sha256(np.ascontiguousarray(grid.indices, dtype="<u2").tobytes()).hexdigest() == entry["grid_sha256"]
            picture = as_given(detokenize(grid, header.width, header.height, model, device), header.grey)  # decompress's
            pixels = np.asarray(picture.convert("RGB")).astype(int)
            reference = np.asarray(Image.open(VECTORS / entry["pixels_png"]).convert("RGB")).astype(int)
            diff = int(np.abs(pixels - reference).max())
            cells.append(f"{'grid ok' if same_grid else 'GRID DIFFERS'}, pixels ±{diff}")
            failures += (not same_grid) + (diff > 1)
        for name, model in models.items():
            model.prior = shipped[name]
        print(f"| {label} | " + " | ".join(cells) + " |")
    torch.set_num_threads(all_threads)
    return 1 if failures else 0


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.exit(main())
