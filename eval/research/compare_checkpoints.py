"""Compare tokenizer checkpoints (run folders, lasting states) and shipped models (model folders) by
their reconstructions (no entropy coding) of a folder of pictures: mean PSNR, MS-SSIM and LPIPS per
quality level. Used to pick the decoder that ships, on held-out training pictures (eval/heldout_set.py),
never Kodak.

    python eval/research/compare_checkpoints.py /work/runs/val vqcodec/weights/vqc-v3 eval/runs/vqgan-f16 --images 13
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from vqcodec.images import image_files, to_rgb
from vqcodec.metrics import load_lpips
from vqcodec.families import read_tokenizer
from vqcodec.tokenizer import Tokenizer
from vqcodec.train.heldout import score


def load(folder: Path) -> tuple[Tokenizer, int]:
    """The tokenizer of a model folder, run folder or lasting state, and the step it was trained to."""
    model, record = read_tokenizer(folder)
    return model.eval(), record.get("tokenizer_steps", record.get("step"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pictures", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None, help="Also write the scores here: {name: {step, levels}}.")
    args = ap.parse_args()
    scores = {}
    lp = load_lpips()
    images = [to_rgb(p, colour_manage=False) for p in image_files(args.pictures)[: args.images]]
    print("| checkpoint | step | level | PSNR dB | MS-SSIM | LPIPS |\n|---|---|---|---|---|---|")
    for run in args.runs:
        model, step = load(run)
        rows = score(model, images, lp)
        scores[run.name] = {"step": step, "images": len(images), "levels": rows}
        for row in rows:
            print(f"| {run.name} | {step} | {row['quality']} | {row['psnr']:.2f} | {row['ms_ssim']:.4f} | "
                  f"{row['lpips']:.4f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(scores, indent=1) + "\n")


if __name__ == "__main__":
    main()
