"""How the encoder picks codes, measured on Kodak (vqcodec/search.py): greedy residual quantization (what
vqcodec 0.4 stored), a beam over the depths, a rate term weighted by rd_lambda, and both (what vqcodec 0.5
stores by default). Per configuration and quality level: file bpp, bits per token against log2 K, the
share of codes that differ from greedy, PSNR and LPIPS; and BD-rate against greedy (negative: fewer bits
for the same quality). A larger rd_lambda is included to show what it takes to bring the prior's bits to
two thirds of log2 K by the encoder's choices alone.

    VQCODEC_LPIPS_WEIGHTS=../shared/weights/lpips_alex_v0.1.safetensors \
        python eval/encoder_search.py ../shared/data/kodak --out eval/results

Results: OUT/MODEL_encoder_search.{csv,json}, OUT/MODEL_encoder_search_table.md, OUT/MODEL_encoder_search.png.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
from tqdm import tqdm

import vqcodec
from vqcodec.bitstream import HEADER, TRAILER
from vqcodec.codec import _to_tensor, detokenize
from vqcodec.codec import encode_tokens
from vqcodec.walk import TokenGrid
from vqcodec.bench import bd_rate, machine_description, write_csv
from vqcodec.images import to_rgb
from vqcodec.metrics import load_lpips, lpips_distance, psnr
from vqcodec.defaults import DEFAULT_RD_LAMBDA
from vqcodec.search import BEAM_WIDTH, choose_codes

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FRAMING_BYTES = HEADER.size + TRAILER.size  # a .vqc file is its payload plus these
# (name, beam width, rd_lambda); None: greedy residual quantization, the tokenizer's own
CONFIGS = [("greedy (vqcodec 0.4)", None, 0.0), (f"beam {BEAM_WIDTH}", BEAM_WIDTH, 0.0),
           (f"greedy + rate, lambda {DEFAULT_RD_LAMBDA:g}", 1, DEFAULT_RD_LAMBDA),
           (f"beam {BEAM_WIDTH} + rate, lambda {DEFAULT_RD_LAMBDA:g} (vqcodec 0.5)", BEAM_WIDTH, DEFAULT_RD_LAMBDA),
           (f"beam {BEAM_WIDTH} + rate, lambda 1", BEAM_WIDTH, 1.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--out", type=Path, default=Path("eval/results"))
    args = ap.parse_args()

    model = vqcodec.load_model()
    lp = load_lpips()
    files = sorted(args.kodak.glob("*.png"))
    books = model.tokenizer.quantizer.codebooks.detach()
    rows = []
    for path in tqdm(files, desc="kodak"):
        rgb = to_rgb(path)
        h, w = rgb.shape[:2]
        z = model.tokenizer.latent(_to_tensor(rgb, model.downsample, model.device))
        for q in range(1, model.levels + 1):
            greedy = model.tokenizer.quantize_latent(z, q)[0].cpu().numpy()
            for name, width, rd_lambda in CONFIGS:
                codes = greedy if width is None else choose_codes(z[0], greedy, books, model.prior, rd_lambda, width)
                grid = TokenGrid(codes, model.codebook_size)
                payload = encode_tokens(grid, model.prior)
                out = np.asarray(detokenize(grid, w, h, model))
                rows.append({"image": path.name, "quality": q, "encoder": name,
                             "bpp": 8 * (len(payload) + FRAMING_BYTES) / (w * h),
                             "bits_per_token": 8 * len(payload) / codes.size,
                             "changed_codes": float((codes != greedy).mean()),
                             "psnr": psnr(rgb, out), "lpips": lpips_distance(lp, rgb, out)})
    write_csv(rows, args.out / f"{model.name}_encoder_search.csv")

    names = [c[0] for c in CONFIGS]
    curves = {}
    for name in names:
        curves[name] = []
        for q in range(1, model.levels + 1):
            r = [x for x in rows if x["quality"] == q and x["encoder"] == name]
            curves[name].append({"encoder": name, "quality": q, **{k: float(np.mean([x[k] for x in r])) for k in (
                "bpp", "bits_per_token", "changed_codes", "psnr", "lpips")}})
    bd = []
    base = curves[names[0]]
    for name in names[1:]:
        for levels in ((1, 2, 3), tuple(range(1, model.levels + 1))):
            pick = lambda c, key: [c[q - 1][key] for q in levels]  # noqa: E731
            # bd_rate(A, B) is B's rate against A's.
            lp_bd, _ = bd_rate(pick(base, "bpp"), pick(base, "lpips"), pick(curves[name], "bpp"),
                               pick(curves[name], "lpips"), higher_is_better=False)
            ps_bd, _ = bd_rate(pick(base, "bpp"), pick(base, "psnr"), pick(curves[name], "bpp"), pick(curves[name], "psnr"))
            bd.append({"encoder": name, "levels": list(levels), "bd_rate_lpips_pct": lp_bd, "bd_rate_psnr_pct": ps_bd})
    meta = {"model": model.name, "model_id": model.model_id.hex(), "vqcodec": vqcodec.__version__, "images": len(files),
            "data": str(args.kodak), "machine": machine_description(),
            "summary": [s for c in curves.values() for s in c], "bd_rate_against_greedy": bd}
    (args.out / f"{model.name}_encoder_search.json").write_text(json.dumps(meta, indent=1) + "\n")

    log2k = math.log2(model.codebook_size)
    lines = ["| encoder | level | bpp | bits/token | prior / log2 K | codes unlike greedy | PSNR dB | LPIPS |",
             "|---|---|---|---|---|---|---|---|"]
    for c in curves.values():
        for s in c:
            lines.append(f"| {s['encoder']} | {s['quality']} | {s['bpp']:.4f} | {s['bits_per_token']:.2f} | "
                         f"{s['bits_per_token'] / log2k:.1%} | {s['changed_codes']:.0%} | {s['psnr']:.2f} | {s['lpips']:.4f} |")
    fmt = lambda v: "n/a" if v is None else f"{v:+.1f} %"  # noqa: E731
    lines += ["", "BD-rate against greedy (negative: fewer bits for the same quality):", "",
              "| encoder | levels | by LPIPS | by PSNR |", "|---|---|---|---|"]
    lines += [f"| {b['encoder']} | {b['levels'][0]}–{b['levels'][-1]} | {fmt(b['bd_rate_lpips_pct'])} | "
              f"{fmt(b['bd_rate_psnr_pct'])} |" for b in bd]
    (args.out / f"{model.name}_encoder_search_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, c in curves.items():
        bpp = [s["bpp"] for s in c]
        axes[0].plot(bpp, [s["lpips"] for s in c], "o-", label=name)
        axes[1].plot(bpp, [s["psnr"] for s in c], "o-", label=name)
    axes[0].set(xlabel="bpp", ylabel="LPIPS (lower is better)", title=f"{model.name}, Kodak (24), levels 1-{model.levels}")
    axes[1].set(xlabel="bpp", ylabel="PSNR dB", title="the same files")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / f"{model.name}_encoder_search.png", dpi=110)


if __name__ == "__main__":
    main()
