"""Make the reference .vqc files in bitstreams/vectors/ that do not exist yet, and draw every vector's
pixels with the shipped model that decodes it. Existing files are kept: later versions of vqcodec must
still decode them. Each case (CASES) has a vector made by the default model, or by an earlier model it
reads (FORMAT.md, reads_files_of); a default model that reads none of a case's vectors adds its own, named
CASE-MODEL. A file made by an earlier model must decode to its recorded grid; its pixels are redrawn only
when another shipped model now reads it, by that model's decoder.

    python bitstreams/make_vectors.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from skimage import data as skdata

import vqcodec
from vqcodec.codec import as_given, decode_grid, detokenize

HERE = Path(__file__).parent / "vectors"

# name -> (image, quality or None for the top level, coder)
CASES = {
    "coffee-q1-prior": (lambda: skdata.coffee()[100:196, 200:328], 1, "prior"),
    "chelsea-odd-top-prior": (lambda: skdata.chelsea()[50:83, 90:167], None, "prior"),
    "astronaut-q2-uniform": (lambda: skdata.astronaut()[0:64, 192:256], 2, "uniform"),
    "camera-gray-q2-prior": (lambda: skdata.camera()[200:280, 180:300], 2, "prior"),  # made before the grey flag
    "camera-grey-flag-q2-prior": (lambda: skdata.camera()[200:280, 180:300], 2, "prior"),  # decodes to mode L
    "astronaut-q4-prior": (lambda: skdata.astronaut()[100:400, 40:440], 4, "prior"),
    "rocket-q5-prior": (lambda: skdata.rocket()[120:216, 200:360], 5, "prior"),
    "chelsea-q3-prior": (lambda: skdata.chelsea()[40:168, 60:252], 3, "prior"),
    # 16 x 4112 pixels (astronaut's bands side by side): a 1 x 257 token grid in 17 tiles, two tile groups
    "strip-q3-prior": (lambda: np.concatenate([skdata.astronaut()[16 * i:16 * i + 16] for i in range(9)], 1)[:, :4112],
                       3, "prior"),
}


def grid_sha256(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<u2").tobytes()).hexdigest()


def main() -> None:
    HERE.mkdir(exist_ok=True)
    default = vqcodec.load_model()
    old = json.loads((HERE / "vectors.json").read_text()) if (HERE / "vectors.json").exists() else {}
    names = {name: entry.get("case", name) for name, entry in old.items()}
    for case, (make, quality, coder) in CASES.items():
        if any(c == case and default.decodes_files_of(bytes.fromhex(old[n]["model_id"])) for n, c in names.items()):
            continue
        name = f"{case}-{default.name}" if case in names else case
        if not (HERE / f"{name}.vqc").exists():
            data = vqcodec.compress(make(), quality=quality or default.levels, model=default, coder=coder)
            (HERE / f"{name}.vqc").write_bytes(data)
        names[name] = case
    record = {}
    for name, case in names.items():
        data = (HERE / f"{name}.vqc").read_bytes()
        header, grid, model = decode_grid(data)  # the shipped model that reads it (ModelMismatch: none does)
        maker = model.name if header.model_id == model.model_id else model.reads_files_of[header.model_id]
        if name in old and old[name]["grid_sha256"] != grid_sha256(grid.indices):
            raise SystemExit(f"{name}: {model.name} decodes another grid than the one recorded")
        if name in old and old[name]["pixels_by"] == model.name:
            record[name] = old[name]  # drawn by this model already: redrawn here, its pixels could move by ±1
            continue
        image = as_given(detokenize(grid, header.width, header.height, model), header.grey)  # decompress's
        image.save(HERE / f"{name}.png")
        record[name] = {"case": case, "file": f"{name}.vqc", "bytes": len(data), "model": maker,
                        "model_id": header.model_id.hex(), "quality": header.quality,
                        "coder": header.coder.name.lower(), "grey": header.grey, "width": header.width,
                        "height": header.height,
                        "grid_sha256": grid_sha256(grid.indices), "pixels_png": f"{name}.png",
                        "pixels_by": model.name,
                        "pixels_sha256": hashlib.sha256(np.asarray(image).tobytes()).hexdigest()}
    (HERE / "vectors.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{len(record)} vectors in {HERE}, pixels drawn by {', '.join(sorted({e['pixels_by'] for e in record.values()}))}")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
