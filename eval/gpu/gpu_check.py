"""The GPU path, checked against the CPU on one machine: every reference vector decoded on DEVICE (index
grid exact by its SHA-256, pixels within +-1 of the recorded CPU decode); every picture of IMAGES encoded
on DEVICE and on the CPU, each file decoded on the other side (files are interchangeable by construction:
the prior is integer-exact), with encode and decode times per picture on both. Writes OUT/gpu_check.md and
.json; exits non-zero if any check fails. eval/gpu/gpu_check.sh runs it on a bare GPU machine.

    python eval/gpu/gpu_check.py OUT --device cuda --images ../shared/data/kodak
    python eval/gpu/gpu_check.py /tmp/out --device cpu --images SMALL_PICTURES --limit 2   # CI
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vqcodec
from vqcodec.bench import machine_description
from vqcodec.codec import decode_grid
from vqcodec.images import to_rgb

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "bitstreams" / "vectors"


def timed(device: str, fn, *args, **kwargs):
    """fn's result and its wall time, the device's queued work included."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def check_vectors(device: str, pattern: str) -> list[dict]:
    rows = []
    for name, entry in sorted(json.loads((VECTORS / "vectors.json").read_text()).items()):
        if not fnmatch.fnmatch(name, pattern):
            continue
        data = (VECTORS / entry["file"]).read_bytes()
        model = vqcodec.load_model(entry["pixels_by"], device=device)
        (_, grid, _), _ = timed(device, decode_grid, data, model)
        digest = hashlib.sha256(np.ascontiguousarray(grid.indices, dtype="<u2").tobytes()).hexdigest()
        image, seconds = timed(device, vqcodec.decompress, data, model)
        reference = np.asarray(Image.open(VECTORS / entry["pixels_png"]).convert(image.mode)).astype(int)
        diff = int(np.abs(np.asarray(image).astype(int) - reference).max())
        rows.append({"vector": name, "grid_exact": digest == entry["grid_sha256"], "max_pixel_diff": diff,
                     "decode_s": round(seconds, 3)})
    return rows


def check_images(device: str, images: list[Path]) -> list[dict]:
    here, cpu = vqcodec.load_model(device=device), vqcodec.load_model(device="cpu")  # one model with --device cpu
    rows = []
    for path in images:
        rgb = to_rgb(path)
        on_device, enc_device = timed(device, vqcodec.compress, rgb, model=here)
        on_cpu, enc_cpu = timed("cpu", vqcodec.compress, rgb, model=cpu)
        cross = {}
        for label, data, model, dev in (("device_file_on_cpu", on_device, cpu, "cpu"),
                                        ("cpu_file_on_device", on_cpu, here, device),
                                        ("device_file_on_device", on_device, here, device),
                                        ("cpu_file_on_cpu", on_cpu, cpu, "cpu")):
            try:
                image, seconds = timed(dev, vqcodec.decompress, data, model)
                cross[label] = (np.asarray(image), seconds)
            except vqcodec.FormatError as e:
                cross[label] = (None, str(e))
        ok = all(v[0] is not None for v in cross.values())
        diff = int(np.abs(cross["device_file_on_device"][0].astype(int)
                          - cross["device_file_on_cpu"][0].astype(int)).max()) if ok else None
        rows.append({"image": path.name, "same_bytes": on_device == on_cpu, "bytes": len(on_device),
                     "cross_decodes": ok, "max_pixel_diff": diff,
                     "encode_device_s": round(enc_device, 3), "encode_cpu_s": round(enc_cpu, 3),
                     "decode_device_s": round(cross["device_file_on_device"][1], 3) if ok else None,
                     "decode_cpu_s": round(cross["cpu_file_on_cpu"][1], 3) if ok else None})
    return rows


def report(device: str, vectors: list[dict], images: list[dict]) -> tuple[str, bool]:
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none (--device cpu)"
    passed = all(v["grid_exact"] and v["max_pixel_diff"] <= 1 for v in vectors) and \
        all(r["cross_decodes"] and r["max_pixel_diff"] <= 1 for r in images)
    mean = lambda key: sum(r[key] for r in images) / max(1, len(images))  # noqa: E731
    lines = [f"# GPU check: {'PASSED' if passed else 'FAILED'}", "",
             f"Device: {device} ({gpu}); CPU side: {machine_description()}.", "",
             f"## Reference vectors decoded on {device}", "",
             "| vector | grid exact | max pixel diff | decode s |", "|---|---|---|---|"]
    lines += [f"| {v['vector']} | {'yes' if v['grid_exact'] else 'NO'} | {v['max_pixel_diff']} | {v['decode_s']} |"
              for v in vectors]
    lines += ["", f"## Pictures: encoded on {device} and on the CPU, each file decoded on the other", "",
              "| picture | bytes | same bytes | decodes across | max pixel diff | encode s device / CPU | decode s device / CPU |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['image']} | {r['bytes']} | {'yes' if r['same_bytes'] else 'no'} | "
              f"{'yes' if r['cross_decodes'] else 'NO'} | {r['max_pixel_diff']} | {r['encode_device_s']} / "
              f"{r['encode_cpu_s']} | {r['decode_device_s']} / {r['decode_cpu_s']} |" for r in images]
    if images and passed:
        lines += ["", f"Mean per picture: encode {mean('encode_device_s'):.2f} s on {device}, "
                      f"{mean('encode_cpu_s'):.2f} s on the CPU; decode {mean('decode_device_s'):.2f} s on {device}, "
                      f"{mean('decode_cpu_s'):.2f} s on the CPU."]
    return "\n".join(lines) + "\n", passed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--images", type=Path, required=True, help="a folder of pictures (PNG)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pictures (0: all)")
    ap.add_argument("--vectors", default="*", help="only the reference vectors whose names match this pattern")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("Error: no CUDA device here (--device cpu?)")
    images = sorted(args.images.glob("*.png"))[:args.limit or None]
    vectors = check_vectors(args.device, args.vectors)
    rows = check_images(args.device, images)
    text, passed = report(args.device, vectors, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.md").write_text(text)
    (args.out / "gpu_check.json").write_text(json.dumps({"device": args.device, "vectors": vectors, "images": rows},
                                                        indent=1))
    print(text)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
