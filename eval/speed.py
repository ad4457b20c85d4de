"""Encode and decode time per Kodak image: vqcodec at its default quality beside CompressAI's
autoregressive mbt2018 (Minnen et al. 2018, context model decoded position by position) at quality 3
(192 latent channels) and 8 (320), in the same run on the same machine. mbt2018's weights are
untrained (pretrained=False): its timing does not depend on them, and this machine cannot download
them. CompressAI is an eval-only dependency:

    pip install -e ".[eval]"
    python eval/speed.py ../shared/data/kodak --out eval/results
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import vqcodec
from vqcodec.bench import machine_description
from vqcodec.images import to_rgb


def time_vqcodec(rgb: np.ndarray, model) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    data = vqcodec.compress(rgb, model=model)
    t1 = time.perf_counter()
    vqcodec.decompress(data, model=model)
    return t1 - t0, time.perf_counter() - t1, len(data)


@torch.no_grad()
def time_mbt2018(rgb: np.ndarray, net) -> tuple[float, float]:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    t0 = time.perf_counter()
    out = net.compress(x)
    t1 = time.perf_counter()
    net.decompress(out["strings"], out["shape"])
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--images", type=int, default=24, help="first N images (mbt2018 is slow)")
    args = ap.parse_args()
    from compressai.zoo import mbt2018

    nets = {}
    for quality in (3, 8):  # the two layouts: 192 and 320 latent channels
        nets[quality] = mbt2018(quality=quality, pretrained=False).eval()
        nets[quality].update(force=True)
    model = vqcodec.load_model()
    rows = []
    for path in tqdm(sorted(args.kodak.glob("*.png"))[:args.images], desc="kodak"):
        rgb = to_rgb(path)
        enc, dec, size = time_vqcodec(rgb, model)
        row = {"image": path.name, "vqcodec_encode_s": enc, "vqcodec_decode_s": dec, "vqcodec_bytes": size}
        for quality, net in nets.items():
            row[f"mbt2018_q{quality}_encode_s"], row[f"mbt2018_q{quality}_decode_s"] = time_mbt2018(rgb, net)
        rows.append(row)
    keys = [k for k in rows[0] if k.endswith("_s")]
    summary = {k: {"mean": float(np.mean([r[k] for r in rows])), "max": float(np.max([r[k] for r in rows]))}
               for k in keys}
    result = {"images": len(rows), "vqcodec_quality": model.default_quality, "model": model.name,
              "machine": machine_description(), "summary": summary, "per_image": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(result, indent=1) + "\n")
    for k in keys:
        print(f"{k:20s} mean {summary[k]['mean']:.2f} s  max {summary[k]['max']:.2f} s")


if __name__ == "__main__":
    main()
