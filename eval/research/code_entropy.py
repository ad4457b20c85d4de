"""How costly a tokenizer's codes look before any prior is trained on them: per quantizer depth, the
share of codebook entries used and the unigram entropy of the indices on a folder of pictures (bits
per token; log2 K is the uniform cost). A prior codes below the unigram entropy, so this compares
tokenizers, not files.

    python eval/research/code_entropy.py /work/runs/val vqcodec/weights/vqc-v3 eval/runs/vqgan-f16
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from compare_checkpoints import load
from vqcodec.images import image_files, to_rgb
from vqcodec.tokenizer import to_unit_range


def unigram_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pictures", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    args = ap.parse_args()
    pictures = [to_rgb(p, colour_manage=False) for p in image_files(args.pictures)]
    print("| tokenizer | step | depth | entries used | unigram bits/token | uniform |\n|---|---|---|---|---|---|")
    for run in args.runs:
        model, step = load(run)
        f, depth, K = model.cfg.downsample, model.cfg.depth, model.cfg.codebook_size
        counts = np.zeros((depth, K), np.int64)
        for rgb in pictures:
            rgb = rgb[: rgb.shape[0] // f * f, : rgb.shape[1] // f * f]
            x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])
            indices = model.encode(x, depth)[0].reshape(depth, -1).numpy()
            for d in range(depth):
                counts[d] += np.bincount(indices[d], minlength=K)
        entropies = [unigram_bits(c) for c in counts]
        for d, bits in enumerate(entropies):
            used = (counts[d] > 0).mean()
            print(f"| {run.name} | {step} | {d + 1} | {used:.3f} | {bits:.3f} | {math.log2(K):.0f} |")
        print(f"| {run.name} | {step} | all | | {sum(entropies):.3f} | {depth * math.log2(K):.0f} |", flush=True)

if __name__ == "__main__":
    main()
