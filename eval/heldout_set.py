"""Write the held-out pictures that tokenizer checkpoints are compared on (never Kodak): every 20th
training image (the prior's hold-out rule) that is at least 256 px a side, every 4th of those, cropped
to multiples of 16.

    python eval/heldout_set.py ../shared/data/train /work/runs/val
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from vqcodec.images import image_files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    held = [Image.open(p).convert("RGB") for p in image_files(args.train)[::20]]
    for k, im in enumerate([im for im in held if min(im.size) >= 256][::4]):
        im.crop((0, 0, im.width // 16 * 16, im.height // 16 * 16)).save(args.out / f"held_{k:02d}.png")


if __name__ == "__main__":
    main()
