"""Plot a lasting run's held-out scores (state.json's evaluations) against the training pixels its
weights have seen, one line per quality level, beside a shipped model's scores on the same pictures
(dashed; eval/research/compare_checkpoints.py --json).

    python eval/research/plot_run.py eval/runs/vqgan-f16 --baseline eval/results/heldout_vqc-v3.json --out eval/results/v4_heldout.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("state", type=Path)
    ap.add_argument("--baseline", type=Path, default=Path("eval/results/heldout_vqc-v3.json"))
    ap.add_argument("--out", type=Path, default=Path("eval/results/v4_heldout.png"))
    args = ap.parse_args()
    evaluations = json.loads((args.state / "state.json").read_text())["evaluations"]
    (name, baseline), = json.loads(args.baseline.read_text()).items()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), dpi=110)
    for ax, metric, label in zip(axes, ("psnr", "ms_ssim", "lpips"), ("PSNR dB", "MS-SSIM", "LPIPS (lower is better)")):
        for k, level in enumerate(baseline["levels"]):
            color = f"C{k}"
            pixels = [e["train_pixels"] / 1e9 for e in evaluations]
            ax.plot(pixels, [e["levels"][k][metric] for e in evaluations], "o-", color=color,
                    label=f"level {level['quality']}")
            ax.axhline(level[metric], color=color, linestyle="--", linewidth=0.8)
        ax.set_xlabel("training pixels seen (G)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{args.state}: held-out pictures (solid) against {name} (dashed)")
    fig.tight_layout()
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
