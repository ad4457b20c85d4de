"""Write the held-out pictures that tokenizer checkpoints are compared on (never Kodak) as PNG files:
vqcodec.train.heldout's rule (every 20th training image, those at least 256 px a side, every 4th of them,
cropped to multiples of 16). Training runs score the same pictures themselves (`--eval-every`).

    python eval/heldout_set.py ../shared/data/train /work/runs/val
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from vqcodec.train.heldout import held_out_pictures

MULTIPLE = 16  # the files are cropped to multiples of this, as every comparison since vqc-v3 scored them


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for k, rgb in enumerate(held_out_pictures(args.train)):
        rgb = rgb[: rgb.shape[0] // MULTIPLE * MULTIPLE, : rgb.shape[1] // MULTIPLE * MULTIPLE]
        Image.fromarray(rgb).save(args.out / f"held_{k:02d}.png")


if __name__ == "__main__":
    main()
