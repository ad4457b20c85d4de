"""Rate-distortion picture of the f8 probes: PSNR and LPIPS against estimated bpp on each folder's held-out
pictures, the f16 levels 1-6 beside each probe's fine levels (from f8_probe.py --score's JSON; where a
f8_context_bits.py JSON is given for a probe, its fine levels' bpp come from that context model).

    python eval/research/f8_plot.py --probe inject=eval/results/research/f8_inject.json \
        --bits inject=eval/results/research/f8_inject_bits.json --out eval/results/research/f8_probes.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--probe", action="append", required=True, help="NAME=SCORE_JSON")
    ap.add_argument("--bits", action="append", default=[], help="NAME=CONTEXT_BITS_JSON")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    probes = {k: json.loads(Path(v).read_text()) for k, v in (s.split("=", 1) for s in args.probe)}
    bits = {k: json.loads(Path(v).read_text()) for k, v in (s.split("=", 1) for s in args.bits)}
    folders = list(next(iter(probes.values()))["folders"])
    fig, axes = plt.subplots(2, len(folders), figsize=(5.5 * len(folders), 8), squeeze=False)
    for c, folder in enumerate(folders):
        for name, result in probes.items():
            rows = result["folders"][folder]["rows"]
            bpp = {k: r["bpp_estimate"] for k, r in rows.items() if r["bpp_estimate"] is not None}
            if name in bits:
                bpp |= bits[name]["folders"][folder]["bpp_estimate"]
            coarse = [k for k in bpp if k.startswith("level")]
            fine = ["level 3"] + [k for k in bpp if k.startswith("3 + f8")]
            for r, metric in enumerate(("psnr", "lpips")):
                ax = axes[r][c]
                if name == next(iter(probes)):
                    ax.plot([bpp[k] for k in coarse], [rows[k][metric] for k in coarse], "o-", color="grey",
                            label=f"f16 levels 1-6 ({name}'s decoder)")
                ax.plot([bpp[k] for k in fine], [rows[k][metric] for k in fine], "s-",
                        label=f"{name}: level 3 + f8 depths 1-3")
                ax.set_xscale("log")
                ax.set_xticks([0.03, 0.05, 0.1, 0.2, 0.4], ["0.03", "0.05", "0.1", "0.2", "0.4"])
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.set_xlabel("estimated bpp")
                ax.set_ylabel({"psnr": "PSNR dB", "lpips": "LPIPS (alex)"}[metric])
                ax.set_title(f"held-out {folder} ({result['folders'][folder]['images']})")
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
