"""Rate control on Kodak: files made to fit --max-bytes and --target-bpp budgets, their sizes against the
budget, the level and rd_lambda chosen, and the CPU time against a plain compress at the chosen level (one
thread, so the figures hold on a busy machine):

    python eval/rate_control.py ../shared/data/kodak --images kodim01 kodim02 kodim03 kodim04 --out eval/results
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

import vqcodec
from vqcodec.bench import machine_description
from vqcodec.codec import compress_to_size
from vqcodec.images import to_rgb


def cpu_time(fn, *args, **kwargs):
    start = time.process_time()
    result = fn(*args, **kwargs)
    return result, time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kodak", type=Path)
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim02", "kodim03", "kodim04"])
    ap.add_argument("--max-bytes", type=int, nargs="+", default=[1500, 3000, 5000])
    ap.add_argument("--target-bpp", type=float, nargs="+", default=[0.05])
    ap.add_argument("--out", type=Path, default=Path("eval/results"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = vqcodec.load_model()
    targets = [("max_bytes", n) for n in args.max_bytes] + [("target_bpp", b) for b in args.target_bpp]
    rows = []
    for name in tqdm(args.images, desc="images"):
        rgb = to_rgb(args.kodak / f"{name}.png")
        pixels = rgb.shape[0] * rgb.shape[1]
        for kind, value in targets:
            sized, seconds = cpu_time(compress_to_size, rgb, model=model, **{kind: value})
            _, plain = cpu_time(vqcodec.compress, rgb, quality=sized.quality, model=model)
            limit = value if kind == "max_bytes" else int(value * pixels / 8)
            rows.append({"image": name, "target": kind, "value": value, "limit_bytes": limit,
                         "bytes": len(sized.data), "bpp": round(8 * len(sized.data) / pixels, 4),
                         "fill": round(len(sized.data) / limit, 3), "quality": sized.quality,
                         "rd_lambda": round(sized.rd_lambda, 3), "cpu_s": round(seconds, 2),
                         "plain_cpu_s": round(plain, 2), "cost": round(seconds / plain, 2)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rate_control.json").write_text(json.dumps({"machine": machine_description(), "rows": rows}, indent=1))
    lines = [f"# Rate control on Kodak ({machine_description()}, one thread)", "",
             "`python eval/rate_control.py ../shared/data/kodak` — cost: CPU time of the sized file over a plain "
             "compress at the level it chose.", "",
             "| image | target | bytes | fill | bpp | level | rd_lambda | CPU s | plain CPU s | cost |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = f"{r['value']} B" if r["target"] == "max_bytes" else f"{r['value']} bpp ({r['limit_bytes']} B)"
        lines.append(f"| {r['image']} | {target} | {r['bytes']} | {r['fill']} | {r['bpp']} | {r['quality']} | "
                     f"{r['rd_lambda']} | {r['cpu_s']} | {r['plain_cpu_s']} | {r['cost']}× |")
    lines += ["", "| target | mean fill | min fill | max cost |", "|---|---|---|---|"]
    for kind, value in targets:
        sel = [r for r in rows if r["target"] == kind and r["value"] == value]
        lines.append(f"| {value} {'B' if kind == 'max_bytes' else 'bpp'} | "
                     f"{sum(r['fill'] for r in sel) / len(sel):.3f} | {min(r['fill'] for r in sel):.3f} | "
                     f"{max(r['cost'] for r in sel):.2f}× |")
    (args.out / "rate_control.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
