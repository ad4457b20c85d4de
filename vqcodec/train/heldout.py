"""The held-out training pictures that checkpoints are chosen on (never Kodak), and their scores.

Every HOLD_OUT_EVERY-th training image (sorted by path) is held out: a run started with its
`held_out_every` set never trains on it. The pictures scored are those of them at least 256 px a
side, every 4th (13 pictures of ../shared/data/train); each is scored cropped to whole tokens of the
model scored.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..images import image_files, to_rgb
from ..metrics import ms_ssim, psnr
from ..tokenizer import Tokenizer, to_pixels, to_unit_range

HOLD_OUT_EVERY = 20


def is_held_out(index: int, every: int = HOLD_OUT_EVERY) -> bool:
    """Whether the image at this place of the sorted file list is held out."""
    return every > 0 and index % every == 0


def held_out_pictures(train: Path) -> list[np.ndarray]:
    """The scored held-out pictures of a training folder as uint8 RGB arrays."""
    held = [to_rgb(p, colour_manage=False) for k, p in enumerate(image_files(train)) if is_held_out(k)]
    return [a for a in held if min(a.shape[:2]) >= 256][::4]


def whole_tokens(rgb: np.ndarray, model: Tokenizer) -> np.ndarray:
    """The picture cropped to whole tokens of the model's grid (no padding in the scores)."""
    f = model.cfg.downsample
    return rgb[: rgb.shape[0] // f * f, : rgb.shape[1] // f * f]


@torch.no_grad()
def score(model: Tokenizer, pictures: list[np.ndarray], lpips_model: torch.nn.Module) -> list[dict]:
    """Mean PSNR, MS-SSIM and LPIPS of the reconstructions (no entropy coding) at every quality level."""
    was_training, device = model.training, model.quantizer.codebooks.device
    model.eval()
    rows = []
    for quality in range(1, model.cfg.depth + 1):
        scores = []
        for rgb in map(lambda a: whole_tokens(a, model), pictures):
            x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]).to(device)
            out = to_pixels(model.decode(model.encode(x, quality)))
            perceptual = lpips_model(x, to_unit_range(out)).item()
            out = out[0].permute(1, 2, 0).cpu().numpy()
            scores.append((psnr(rgb, out), ms_ssim(rgb, out), perceptual))
        p, m, l = np.mean(scores, 0)
        rows.append({"quality": quality, "psnr": round(float(p), 3), "ms_ssim": round(float(m), 4),
                     "lpips": round(float(l), 4)})
    model.train(was_training)
    return rows
