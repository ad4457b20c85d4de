"""The prior beyond the codec's own numbers:

1. held-out negative log-likelihood of the shipped (integer) prior, bits per index, on full 16x16 tiles of
   the training images the prior never saw (every 20th image of ../shared/data/train and its mirror
   image, the prior run's hold-out rule), per quality level;
2. what the seed paper's sliding attention window, and bands of tiles that see the decoded rows above
   them, would save on Kodak against the codec's independent tiles: ideal code length (bits per index),
   and the window's wall time, on the first N images.

    python eval/prior_eval.py ../shared/data/train ../shared/data/kodak --out eval/results

Results: OUT/MODEL_prior_eval.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import vqcodec
from vqcodec.codec import _to_tensor, tokenize
from vqcodec.walk import tile_groups
from vqcodec.bench import machine_description
from vqcodec.generate import walk_sliding_window
from vqcodec.images import image_files, to_rgb

HOLDOUT_EVERY = 20  # PriorTrainConfig.holdout = 0.05


@torch.no_grad()
def heldout_nll(model, train: Path) -> dict[int, float]:
    """Bits per index over all full window x window tiles of the held-out training images."""
    window, f = model.prior.cfg.window, model.downsample
    grids = []
    for path in tqdm(image_files(train)[::HOLDOUT_EVERY], desc="tokenizing held-out images"):
        a = np.asarray(Image.open(path).convert("RGB"))
        a = a[: a.shape[0] // f * f, : a.shape[1] // f * f]
        for view in (a, a[:, ::-1]):
            # Greedy codes, as the prior was trained on (the codec's encoder searches: vqcodec/search.py).
            x = _to_tensor(np.ascontiguousarray(view), model.downsample, model.device)
            grids.append(model.tokenizer.encode(x, model.levels)[0].cpu().numpy())
    result = {}
    for q in tqdm(range(1, model.levels + 1), desc="held-out NLL"):
        tiles = [g[:q, y:y + window, x:x + window].reshape(q, -1).T for g in grids
                 for y in range(0, g.shape[1] - window + 1, window) for x in range(0, g.shape[2] - window + 1, window)]
        bits, count = 0.0, 0
        for i in range(0, len(tiles), 16):
            codes = torch.from_numpy(np.stack(tiles[i:i + 16]))                   # (B, T, q)
            n = len(codes)
            freqs = model.prior.forward(codes, torch.full((n,), window ** 2), torch.full((n,), window)).double()
            p = freqs.gather(-1, codes[..., None])[..., 0] / freqs.sum(-1)
            bits -= torch.log2(p).sum().item()
            count += codes.numel()
        result[q] = bits / count
    return result


def crop_bits(model, indices: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Ideal code length (bits) of each position of a crop of the grid coded as one tile, in its raster order."""
    q = indices.shape[0]
    codes = torch.from_numpy(indices[:, y0:y1, x0:x1].reshape(q, -1).T.copy())[None]
    freqs = model.prior.forward(codes, torch.tensor([codes.shape[1]]), torch.tensor([x1 - x0])).double()
    return -torch.log2(freqs.gather(-1, codes[..., None])[..., 0] / freqs.sum(-1))[0]   # (positions, q)


def tile_bits(model, indices: np.ndarray) -> float:
    """Ideal code length (bits) of a grid under the codec's independent tiles."""
    return sum(crop_bits(model, indices, y0, y0 + th, x0, x0 + tw).sum().item()
               for group in tile_groups(*indices.shape[1:], model.prior.cfg.window) for y0, x0, th, tw in group)


def stacked_bits(model, indices: np.ndarray, overlap: int = 8) -> float:
    """Ideal code length (bits) of a grid coded in bands of tiles that each start with the last `overlap`
    rows of the band above, already decoded, as context: the cheapest tiling that keeps context from
    decoded neighbours (only from above: tiles side by side still run in lock-step)."""
    _, h, w = indices.shape
    window, total, y = model.prior.cfg.window, 0.0, 0
    while y < h:
        top = max(0, y - overlap) if y else 0           # the band's first row; rows top .. y-1 are known
        bottom = min(top + window, h)
        for x0 in range(0, w, window):
            tw = min(window, w - x0)
            total += crop_bits(model, indices, top, bottom, x0, x0 + tw)[(y - top) * tw:].sum().item()
        y = bottom
    return total


def sliding_window_bits(model, indices: np.ndarray) -> float:
    """Ideal code length (bits) of a grid when every position sees the window around it."""
    q, h, w = indices.shape
    order = iter([(y, x, d) for y in range(h) for x in range(w) for d in range(q)])
    total = 0.0

    def known(freqs: np.ndarray) -> np.ndarray:
        nonlocal total
        y, x, d = next(order)
        symbol = indices[d, y, x]
        total -= np.log2(freqs[0, symbol] / freqs[0].sum())
        return np.array([symbol])

    walk_sliding_window(model.prior, 1, q, h, w, known)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train", type=Path)
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--images", type=int, default=3, help="Kodak images for the sliding-window comparison (0: none)")
    args = ap.parse_args()
    model = vqcodec.load_model()
    result = {"model": model.name, "machine": machine_description(), "heldout_bits_per_index": heldout_nll(model, args.train)}
    rows = []
    for path in sorted(args.kodak.glob("*.png"))[:args.images]:
        rgb = to_rgb(path)
        for q in tqdm(range(1, model.levels + 1), desc=path.name):
            indices = tokenize(rgb, q, model).indices
            t0 = time.perf_counter()
            tiles = tile_bits(model, indices)
            t1 = time.perf_counter()
            window = sliding_window_bits(model, indices)
            t2 = time.perf_counter()
            stacked = stacked_bits(model, indices)
            rows.append({"image": path.name, "quality": q, "tokens": int(indices.size),
                         "tiles_bits_per_index": tiles / indices.size, "window_bits_per_index": window / indices.size,
                         "stacked_bits_per_index": stacked / indices.size,
                         "tiles_pass_s": t1 - t0, "window_walk_s": t2 - t1})
    result["sliding_window"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{model.name}_prior_eval.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["heldout_bits_per_index"]))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
