"""Plot a training run's logs: tokenizer L1 / LPIPS and prior bits per index (train and held-out).

    python eval/research/plot_training.py runs/v1 eval/results/training_curves.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def smooth(values: list[float], n: int = 20) -> np.ndarray:
    v = np.asarray(values, float)
    return np.convolve(v, np.ones(n) / n, mode="valid") if len(v) > n else v


def main(run: Path, out: Path) -> None:
    tok = read(run / "tokenizer_log.jsonl")
    prior = read(run / "prior_log.jsonl")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    steps = [r["step"] for r in tok]
    for key, label in (("l1", "L1"), ("lpips", "LPIPS (training crops)")):
        y = smooth([r[key] for r in tok])
        axes[0].plot(steps[len(steps) - len(y):], y, label=label)
    gan = [r["step"] for r in tok if "g" in r]
    if gan:
        axes[0].axvline(gan[0], color="gray", linestyle=":", label="GAN on (decoder only)")
    axes[0].set_xlabel("tokenizer step")
    axes[0].set_title("tokenizer (random quality level per crop)")
    axes[0].legend()
    y = smooth([r["bits"] for r in prior])
    axes[1].plot([r["step"] for r in prior][len(prior) - len(y):], y, label="train (all levels)", color="gray")
    held = [r for r in prior if "heldout_bits" in r]
    for q in sorted(held[-1]["heldout_bits"], key=int) if held else []:
        axes[1].plot([r["step"] for r in held], [r["heldout_bits"][q] for r in held], "o-", label=f"held-out, level {q}")
    axes[1].axhline(10, color="black", linestyle="--", linewidth=0.8, label="uniform (log2 K)")
    axes[1].set_xlabel("prior step")
    axes[1].set_ylabel("bits per index")
    axes[1].set_title("prior")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="Run folder with tokenizer_log.jsonl and/or prior_log.jsonl.")
    ap.add_argument("out", type=Path, help="The PNG to write.")
    args = ap.parse_args()
    main(args.run, args.out)
