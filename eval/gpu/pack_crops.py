"""Pack training regions for a machine that cannot take the photos: random square regions of the
training images of one or more folders (joined by ":"; never a folder's held-out ones), JPEG-coded into a few `crops-NN.npz` files that
`CropDataset` trains on (random crops and flips inside each region).

    python eval/gpu/pack_crops.py ../shared/data/train eval/gpu_kit/crops --megabytes 9
    python eval/gpu/pack_crops.py ../shared/data/train:../shared/data/train_extra eval/gpu_kit/crops --megabytes 32
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vqcodec.images import image_files, to_rgb
from vqcodec.train.data import folders, jpeg_bytes, write_pack
from vqcodec.train.heldout import HOLD_OUT_EVERY, is_held_out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train", help="training folders, joined by ':'")
    ap.add_argument("out", type=Path)
    ap.add_argument("--megabytes", type=float, default=9.0, help="Size of all packs together.")
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--region", type=int, default=192, help="Side of the square regions, in pixels.")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality of the regions.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    images = [to_rgb(p, colour_manage=False) for folder in folders(args.train)
              for k, p in enumerate(tqdm(image_files(folder), desc=f"reading {folder.name}"))
              if not is_held_out(k, HOLD_OUT_EVERY)]
    images = [a for a in images if min(a.shape[:2]) >= args.region]
    budget = args.megabytes * 1e6 / args.files
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for n in range(args.files):
        regions: list[np.ndarray] = []
        while sum(len(r) for r in regions) < budget:
            a = images[rng.integers(len(images))]
            y, x = rng.integers(a.shape[0] - args.region + 1), rng.integers(a.shape[1] - args.region + 1)
            regions.append(jpeg_bytes(a[y:y + args.region, x:x + args.region], args.quality))
        write_pack(args.out / f"crops-{n:02d}.npz", regions[:-1])  # the last one went past the budget
        total += len(regions) - 1
    print(f"{total} regions of {args.region} px from {len(images)} images in {args.files} packs, "
          f"{sum(p.stat().st_size for p in args.out.glob('crops-*.npz')) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
