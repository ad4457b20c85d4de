"""What integer-exact coding costs: payload bits of the integer prior against the float
prior it was quantized from, and compress / decompress times, on every Kodak image at every level.

The float prior's payload is real range-coder output too: its float64 softmax probabilities, from one
teacher-forced pass per tile, coded with the same constriction model in the same order as the .vqc
payload. (Such a file would decode only where the floats are reproduced exactly; that is the point.)

    python eval/exactness.py ../shared/data/kodak --model MODEL_DIR --float-prior FLOAT_PRIOR --out eval/results

The float prior is never shipped. The measurement in eval/results/exactness.md is of vqc-v1, which lives
in the repository's history (its float prior is vqcodec 0.1's, its integer model vqcodec 0.2's):

    mkdir -p eval/reference/vqc-v1
    for f in config.json tokenizer.safetensors prior_int8.safetensors; do
        git show v0.2.0:vqcodec/weights/vqc-v1/$f > eval/reference/vqc-v1/$f; done
    git show 4c5d231:vqcodec/weights/vqc-v1/prior.safetensors > eval/reference/vqc-v1-prior-fp16.safetensors
    python eval/exactness.py ../shared/data/kodak --model eval/reference/vqc-v1 \
        --float-prior eval/reference/vqc-v1-prior-fp16.safetensors
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import constriction
import numpy as np
import torch
from safetensors.torch import load_file
from tqdm import tqdm

import vqcodec
from vqcodec.codec import tokenize
from vqcodec.codec import decode_tokens, encode_tokens
from vqcodec.coding import CATEGORICAL
from vqcodec.walk import tile_groups
from vqcodec.bench import machine_description, write_csv
from vqcodec.images import to_rgb
from vqcodec.prior import PriorModel

HERE = Path(__file__).parent


@torch.no_grad()
def float_payload_bytes(prior: PriorModel, indices: np.ndarray) -> int:
    """Bytes of the range-coded grid (q, h, w) under the float prior, in the .vqc coding order."""
    encoder = constriction.stream.queue.RangeEncoder()
    q = indices.shape[0]
    for group in tile_groups(*indices.shape[1:], prior.cfg.window):
        per_tile = []
        for y0, x0, th, tw in group:
            tile = torch.from_numpy(indices[:, y0:y0 + th, x0:x0 + tw].transpose(1, 2, 0).copy())[None]
            per_tile.append(torch.softmax(prior(tile)[0].double(), -1).numpy())  # (th*tw, q, K)
        for t in range(max(len(p) for p in per_tile)):
            for d in range(q):
                active = [b for b, p in enumerate(per_tile) if t < len(p)]
                symbols = np.array([indices[d, group[b][0] + t // group[b][3], group[b][1] + t % group[b][3]]
                                    for b in active], np.int32)
                encoder.encode(symbols, CATEGORICAL, np.stack([per_tile[b][t, d] for b in active]))
    return len(encoder.get_compressed().astype("<u4").tobytes().rstrip(b"\0"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--model", required=True, help="model name or folder (its integer prior)")
    ap.add_argument("--float-prior", type=Path, required=True, help="the float prior it was quantized from "
                    "(fp16 safetensors of PriorModel)")
    args = ap.parse_args()

    model = vqcodec.load_model(args.model)
    float_prior = PriorModel(model.prior.cfg)
    float_prior.load_state_dict({k: v.float() for k, v in load_file(str(args.float_prior)).items()})
    float_prior.eval()
    rows = []
    for path in tqdm(sorted(args.kodak.glob("*.png")), desc="kodak"):
        rgb = to_rgb(path)
        for q in range(1, model.levels + 1):
            t0 = time.perf_counter()
            data = vqcodec.compress(rgb, quality=q, model=model)
            t1 = time.perf_counter()
            vqcodec.decompress(data, model=model)
            t2 = time.perf_counter()
            grid = tokenize(rgb, q, model)
            t3 = time.perf_counter()
            payload = encode_tokens(grid, model.prior)
            t4 = time.perf_counter()
            decoded = decode_tokens(payload, q, grid.shape, model.codebook_size, model.prior)
            t5 = time.perf_counter()
            if not np.array_equal(decoded.indices, grid.indices):
                raise SystemExit(f"{path.name} q{q}: decoded grid differs")
            n = grid.indices.size
            float_bytes = float_payload_bytes(float_prior, grid.indices)
            rows.append({"image": path.name, "quality": q, "tokens": n,
                         "int_payload_bytes": len(payload), "float_payload_bytes": float_bytes,
                         "int_bits_per_token": 8 * len(payload) / n, "float_bits_per_token": 8 * float_bytes / n,
                         "compress_s": t1 - t0, "decompress_s": t2 - t1,
                         "prior_encode_s": t4 - t3, "prior_decode_s": t5 - t4})
    write_csv(rows, args.out / "exactness.csv")
    summary = []
    for q in range(1, model.levels + 1):
        r = [x for x in rows if x["quality"] == q]
        int_bytes, float_bytes = sum(x["int_payload_bytes"] for x in r), sum(x["float_payload_bytes"] for x in r)
        tokens = sum(x["tokens"] for x in r)
        summary.append({"quality": q, "float_bits_per_token": 8 * float_bytes / tokens,
                        "int_bits_per_token": 8 * int_bytes / tokens, "rate_cost": int_bytes / float_bytes - 1,
                        **{k: float(np.mean([x[k] for x in r])) for k in
                           ("compress_s", "decompress_s", "prior_encode_s", "prior_decode_s")},
                        "compress_s_max": max(x["compress_s"] for x in r)})
    machine = machine_description()
    (args.out / "exactness.json").write_text(json.dumps({"model": model.name, "model_id": model.model_id.hex(),
                                                         "images": len(rows) // model.levels, "machine": machine,
                                                         "summary": summary}, indent=1) + "\n")
    lines = ["| level | float prior bits/token | integer prior bits/token | rate cost | compress s (mean / max) "
             "| decompress s | prior encode s | prior decode s |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['quality']} | {s['float_bits_per_token']:.4f} | {s['int_bits_per_token']:.4f} "
                     f"| {100 * s['rate_cost']:+.2f}% | {s['compress_s']:.2f} / {s['compress_s_max']:.2f} "
                     f"| {s['decompress_s']:.2f} | {s['prior_encode_s']:.2f} | {s['prior_decode_s']:.2f} |")
    (args.out / "exactness_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(machine)


if __name__ == "__main__":
    main()
