"""What a plain linear transform coder makes of the residual the fine side codes: a yardstick for
vqcodec/hierarchy.py's fine levels.

The residual is the picture minus the f16 picture of level 3's codes, in 8x8 blocks (192 numbers each, the
fine grid's blocks). A PCA of it is fitted on blocks of `train/`'s training pictures (never the held-out
ones); on the held-out pictures the script scores
- the first k principal components, unquantized (what k numbers per block can carry at best, linearly);
- a transform coder: all 192 coefficients rounded to a uniform step, priced by the zero-order entropy of
  each coefficient over the held-out blocks themselves (a slightly optimistic rate: no side information),
  at several steps,
with PSNR, MS-SSIM and LPIPS of level 3's picture plus the decoded residual.

    python eval/research/residual_transform.py eval/runs/vqgan-f16-f8 ../shared/data/train \
        --out eval/results/research/residual_transform
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vqcodec.hierarchy import Hierarchy, read_hierarchy
from vqcodec.images import image_files, to_rgb
from vqcodec.metrics import load_lpips, ms_ssim, psnr
from vqcodec.tokenizer import to_pixels, to_unit_range
from vqcodec.train.heldout import held_out_pictures, is_held_out, whole_tokens

BLOCK = 8           # pixels per fine position along a side
FIT_PICTURES = 40   # training pictures whose blocks fit the PCA (every 25th of the folder's training pictures)


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])


@torch.no_grad()
def residual_blocks(model: Hierarchy, rgb: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """(level 3's f16 picture (1, 3, H, W), the residual's blocks (H/8 * W/8, 192))."""
    x = as_tensor(rgb)
    q = model.tok.quantizer
    x_coarse = model.tok.decoder(q.lookup(q.quantize(model.tok.latent(x))[0][:, :model.fine.cfg.coarse_levels]))
    return x_coarse, F.pixel_unshuffle(x - x_coarse, BLOCK)[0].reshape(3 * BLOCK ** 2, -1).T.numpy()


def with_residual(x_coarse: torch.Tensor, blocks: np.ndarray) -> np.ndarray:
    """Level 3's picture plus residual blocks (n, 192) -> uint8 HxWx3."""
    h, w = x_coarse.shape[2] // BLOCK, x_coarse.shape[3] // BLOCK
    r = torch.from_numpy(blocks.T.reshape(1, 3 * BLOCK ** 2, h, w)).float()
    return to_pixels((x_coarse + F.pixel_shuffle(r, BLOCK)).clamp(-1, 1))[0].permute(1, 2, 0).numpy()


def entropy_bits(symbols: np.ndarray) -> float:
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", type=Path, help="a hierarchy's lasting state (its f16 tokenizer gives level 3)")
    ap.add_argument("data", type=Path, help="the training folder (its held-out pictures are scored)")
    ap.add_argument("--dims", type=int, nargs="+", default=[8, 16, 24, 32])
    ap.add_argument("--steps", type=float, nargs="+", default=[2.2, 1.6, 1.2, 0.9])
    ap.add_argument("--out", type=Path, required=True, help="path prefix of the .json written")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    model = read_hierarchy(args.state)[0]
    lpips_model = load_lpips()
    training = [p for k, p in enumerate(image_files(args.data)) if not is_held_out(k)][::25][:FIT_PICTURES]
    fit = np.concatenate([residual_blocks(model, whole_tokens(to_rgb(p, colour_manage=False), model.tok))[1]
                          for p in tqdm(training, desc="fitting", file=sys.stderr, disable=args.quiet)])
    mean = fit.mean(0)
    basis = np.linalg.svd(fit - mean, full_matrices=False)[2]       # (192, 192), rows by falling variance
    held = [whole_tokens(a, model.tok) for a in held_out_pictures(args.data)]
    pictures = [(rgb, *residual_blocks(model, rgb)) for rgb in held]
    coefficients = np.concatenate([(blocks - mean) @ basis.T for _, _, blocks in pictures])

    def scores(decode) -> dict:
        rows = []
        for rgb, x_coarse, blocks in pictures:
            out = with_residual(x_coarse, decode(blocks))
            rows.append((psnr(rgb, out), ms_ssim(rgb, out), lpips_model(as_tensor(rgb), as_tensor(out)).item()))
        m = np.mean(rows, 0)
        return {"psnr": round(float(m[0]), 2), "ms_ssim": round(float(m[1]), 4), "lpips": round(float(m[2]), 4)}

    results = {"state": str(args.state), "fit_blocks": len(fit), "held_out_pictures": len(held),
               "level 3": scores(lambda b: np.zeros_like(b)), "dims": {}, "steps": {}}
    for k in args.dims:
        results["dims"][k] = scores(lambda b: mean + (b - mean) @ basis[:k].T @ basis[:k])
    for step in args.steps:
        bits = sum(entropy_bits(np.round(coefficients[:, j] / step)) for j in range(coefficients.shape[1]))
        results["steps"][step] = {"bits_per_block": round(bits, 1),
                                  **scores(lambda b: mean + np.round((b - mean) @ basis.T / step) * step @ basis)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
