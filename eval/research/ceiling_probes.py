"""Score the ceiling probes (issue: raise the tokenizer's ceiling) on the held-out pictures of each training
folder: PSNR, MS-SSIM, LPIPS at every quality level and for the unquantized latent, plus crops side by
side. A candidate is NAME=FOLDER (a tokenizer: model folder, run folder or lasting state) or
NAME=taef2:SYNTHESIS_FOLDER:TOKENIZER_FOLDER (taef2_probe.py's synthesis behind that tokenizer's codes).

    python eval/research/ceiling_probes.py ../shared/data/train ../shared/data/train_extra \
        --candidate baseline=/work/probes/p0 --candidate taef2=taef2:/work/probes/p2:eval/runs/vqgan-f16 \
        --out eval/results/research/ceiling_probes
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from latent_ceiling import ceiling
from taef2_probe import Taef2Decoding
from vqcodec.families import read_tokenizer
from vqcodec.metrics import load_lpips
from vqcodec.tokenizer import to_pixels, to_unit_range
from vqcodec.train.heldout import held_out_pictures, whole_tokens


def candidate(spec: str):
    """(tokenizer, decode(z) -> [-1, 1] image, record) of a NAME=... spec's right-hand side."""
    if spec.startswith("taef2:"):
        _, synthesis, folder = spec.split(":")
        tokenizer, record = read_tokenizer(folder)
        decoding = Taef2Decoding(tokenizer.cfg.code_dim)
        decoding.synthesis.load_state_dict(load_file(str(Path(synthesis) / "synthesis.safetensors")))
        decoding.eval()
        record = json.loads((Path(synthesis) / "record.json").read_text())
        return tokenizer.eval(), decoding, {"steps": record["steps"], "cpu_seconds": record["cpu_seconds"]}
    tokenizer, record = read_tokenizer(spec)  # a run started from another's weights counts its own CPU time
    return tokenizer.eval(), tokenizer.decoder, {"steps": record.get("step"), "cpu_seconds": record.get("cpu_seconds")}


@torch.inference_mode()
def crops(models: dict, pictures: list[np.ndarray], level: int, side: int = 160) -> Image.Image:
    """Rows: pictures at `level` and unquantized; columns: the original, then each candidate."""
    rows = []
    for rgb in pictures:
        for kind in (level, "latent"):
            cells = []
            for name, (tokenizer, decode, _) in models.items():
                a = whole_tokens(rgb, tokenizer)
                y, x = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
                z = tokenizer.latent(to_unit_range(torch.from_numpy(a.copy()).permute(2, 0, 1)[None]))
                z_q = z if kind == "latent" else tokenizer.quantizer.lookup(tokenizer.quantize_latent(z, level))
                out = to_pixels(decode(z_q).clamp(-1, 1))[0].permute(1, 2, 0).numpy()
                if not cells:
                    cells.append(("original", a[y:y + side, x:x + side]))
                cells.append((f"{name} {'unquantized' if kind == 'latent' else f'level {kind}'}",
                              out[y:y + side, x:x + side]))
            rows.append(cells)
    grid = Image.new("RGB", (len(rows[0]) * (side + 4), len(rows) * (side + 16)), "white")
    draw = ImageDraw.Draw(grid)
    for r, cells in enumerate(rows):
        for c, (label, cell) in enumerate(cells):
            grid.paste(Image.fromarray(np.ascontiguousarray(cell)), (c * (side + 4), r * (side + 16) + 14))
            draw.text((c * (side + 4) + 2, r * (side + 16)), label, fill="black")
    return grid


def table(results: dict, folder: str) -> str:
    """Markdown: one row per candidate, PSNR / MS-SSIM / LPIPS at each level and unquantized."""
    names = list(results)
    levels = [row["level"] for row in results[names[0]][folder]["levels"]]
    head = "| candidate | steps | CPU-s | " + " | ".join(
        "unquantized" if lv == "latent" else f"level {lv}" for lv in levels) + " |"
    lines = [head, "|" + "---|" * (3 + len(levels))]
    for name in names:
        cells = [f"{r['psnr']:.2f} / {r['ms_ssim']:.4f} / {r['lpips']:.4f}" for r in results[name][folder]["levels"]]
        cpu = results[name].get("cpu_seconds")
        lines.append(f"| {name} | {results[name].get('steps')} | {cpu if cpu is not None else '—'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", type=Path, nargs="+", help="training folders: their held-out pictures are scored")
    ap.add_argument("--candidate", action="append", required=True, help="NAME=FOLDER or NAME=taef2:SYNTH:TOKENIZER")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--crop-level", type=int, default=2)
    ap.add_argument("--images", type=int, default=0, help="score only the first N held-out pictures of each folder")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    models = {spec.split("=", 1)[0]: candidate(spec.split("=", 1)[1]) for spec in args.candidate}
    lpips_model, results, shown = load_lpips(), {}, []
    for folder in args.folders:
        pictures = held_out_pictures(folder)[: args.images or None]
        shown.append(pictures[0])
        for name, (tokenizer, decode, record) in models.items():
            rows = ceiling(tokenizer, pictures, lpips_model, decode)
            results.setdefault(name, {**record})[folder.name] = {"images": len(pictures), "levels": rows}
            print(name, folder.name, rows[1], rows[-1], flush=True)
    (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1) + "\n")
    (args.out.with_suffix(".md")).write_text("".join(
        f"Held-out pictures of {folder.name} ({results[next(iter(results))][folder.name]['images']}), "
        f"PSNR dB / MS-SSIM / LPIPS:\n\n{table(results, folder.name)}\n\n" for folder in args.folders))
    crops(models, shown, args.crop_level).save(args.out.with_name(args.out.name + "_crops.png"))


if __name__ == "__main__":
    main()
