"""Compare tokenizer checkpoints (run folders) and shipped models (model folders) by their
reconstructions (no entropy coding) of a folder of pictures: mean PSNR, MS-SSIM and LPIPS per quality
level. Used to pick the decoder that ships, on held-out training pictures (eval/heldout_set.py), never Kodak.

    python eval/compare_checkpoints.py /work/runs/val vqcodec/weights/vqc-v3 /work/runs/v4_tok --images 13
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from vqcodec.images import image_files, to_rgb
from vqcodec.metrics import load_lpips, lpips_distance, ms_ssim, psnr
from vqcodec.tokenizer import Tokenizer, TokenizerConfig, to_pixels, to_unit_range


def load(run: Path) -> tuple[Tokenizer, int]:
    if (run / "config.json").exists():  # a model folder
        config = json.loads((run / "config.json").read_text())
        model = Tokenizer(TokenizerConfig.from_dict(config["tokenizer"]))
        model.load_state_dict({k: v.float() for k, v in load_file(str(run / "tokenizer.safetensors")).items()})
        return model.eval(), config["tokenizer_steps"]
    meta = json.loads((run / "tokenizer_ckpt.json").read_text())
    model = Tokenizer(TokenizerConfig.from_dict(meta["model"]))
    state = load_file(str(run / "tokenizer_ckpt.safetensors"))
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    return model.eval(), meta["step"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pictures", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--images", type=int, default=8)
    args = ap.parse_args()
    lp = load_lpips()
    images = [to_rgb(p) for p in image_files(args.pictures)[: args.images]]
    print("| checkpoint | step | level | PSNR dB | MS-SSIM | LPIPS |\n|---|---|---|---|---|---|")
    for run in args.runs:
        model, step = load(run)
        for quality in range(1, model.cfg.depth + 1):
            scores = []
            for rgb in images:
                x = to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])
                out = to_pixels(model.decode(model.encode(x, quality))[0]).permute(1, 2, 0).numpy()
                scores.append((psnr(rgb, out), ms_ssim(rgb, out), lpips_distance(lp, rgb, out)))
            p, m, l = np.mean(scores, 0)
            print(f"| {run.name} | {step} | {quality} | {p:.2f} | {m:.4f} | {l:.4f} |", flush=True)


if __name__ == "__main__":
    main()
