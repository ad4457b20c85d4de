"""Large images: time and peak memory (RSS) of `vqcodec compress` and `vqcodec decompress` on a
4096 x 4096 picture, each command in its own process, as a user runs them.

No 4096^2 photo ships with the data, so the picture is a 4 x 4 mosaic of 1024 x 1024 centre crops of
Kodak images (kodim01..16) upsampled 2x with Lanczos: photographic content, smoother than a native
16-megapixel photo (so it codes to fewer bits than one would).

    python eval/large_image.py ../shared/data/kodak --out eval/results
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vqcodec.bench import machine_description
from vqcodec.metrics import psnr

SIDE = 4096
# Runs a command and prints the peak RSS (KiB on Linux) of that command's process tree.
PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def mosaic(kodak: Path) -> Image.Image:
    sheet = Image.new("RGB", (SIDE, SIDE))
    tile = SIDE // 4
    for i, path in enumerate(sorted(kodak.glob("*.png"))[:16]):
        im = Image.open(path).convert("RGB")
        im = im.resize((im.width * 2, im.height * 2), Image.LANCZOS)
        left, top = (im.width - tile) // 2, (im.height - tile) // 2
        sheet.paste(im.crop((left, top, left + tile, top + tile)), ((i % 4) * tile, (i // 4) * tile))
    return sheet


def run_measured(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one command."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, int(out.stdout.split()[-1]) / 2 ** 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--quality", type=int, default=2)
    args = ap.parse_args()
    results = {"image": f"{SIDE}x{SIDE} mosaic of Kodak crops (kodim01-16, 2x Lanczos)", "quality": args.quality,
               "machine": machine_description()}
    with tempfile.TemporaryDirectory() as tmp:
        src, vqc, dst = Path(tmp) / "large.png", Path(tmp) / "large.vqc", Path(tmp) / "decoded.png"
        mosaic(args.kodak).save(src)
        cli = [sys.executable, "-m", "vqcodec.cli"]
        results["compress_s"], results["compress_peak_rss_gib"] = run_measured(
            [*cli, "compress", str(src), str(vqc), "--quality", str(args.quality)])
        results["decompress_s"], results["decompress_peak_rss_gib"] = run_measured(
            [*cli, "decompress", str(vqc), str(dst)])
        results["bytes"] = vqc.stat().st_size
        results["bpp"] = 8 * results["bytes"] / SIDE ** 2
        results["psnr"] = psnr(np.asarray(Image.open(src)), np.asarray(Image.open(dst)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large_image.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
