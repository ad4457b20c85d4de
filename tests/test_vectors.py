"""Reference files in bitstreams/vectors/ still decode with the shipped models, also those an earlier model
that a shipped one reads made: index grid exactly, pixels within +-1."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec.codec import decode_grid
from vqcodec.walk import tile_groups

VECTORS = Path(__file__).parent.parent / "bitstreams" / "vectors"
RECORD = json.loads((VECTORS / "vectors.json").read_text())


@pytest.mark.parametrize("name", sorted(RECORD))
def test_reference_file_decodes_to_its_recorded_grid_and_pixels(name):
    entry = RECORD[name]
    data = (VECTORS / entry["file"]).read_bytes()
    header, grid, model = decode_grid(data)
    assert (header.width, header.height, header.quality) == (entry["width"], entry["height"], entry["quality"])
    digest = hashlib.sha256(np.ascontiguousarray(grid.indices, dtype="<u2").tobytes()).hexdigest()
    assert digest == entry["grid_sha256"]
    decoded = vqcodec.decompress(data)
    assert decoded.mode == ("L" if entry.get("grey") else "RGB")
    pixels = np.asarray(decoded).astype(int)
    reference = np.asarray(Image.open(VECTORS / entry["pixels_png"]).convert(decoded.mode)).astype(int)
    assert pixels.shape == reference.shape
    assert np.abs(pixels - reference).max() <= 1


@pytest.mark.parametrize("model_name", sorted({e["pixels_by"] for e in RECORD.values()} | {vqcodec.load_model().name}))
def test_vectors_cover_both_coders_every_level_and_several_tile_groups(model_name):
    entries = [e for e in RECORD.values() if e["pixels_by"] == model_name]
    assert {e["coder"] for e in entries} == {"uniform", "prior"}
    assert model_name != vqcodec.load_model().name or any(e.get("grey") for e in entries)  # the grey flag
    model = vqcodec.load_model(model_name)
    assert {e["quality"] for e in entries} == set(range(1, model.levels + 1))
    f, window = model.downsample, model.prior.cfg.window
    assert any(len(tile_groups(-(-e["height"] // f), -(-e["width"] // f), window)) > 1 for e in entries)


@pytest.mark.parametrize("name", sorted(RECORD))
def test_info_names_the_model_that_made_a_file_and_the_one_that_decodes_it(name):
    from vqcodec import describe

    d = describe((VECTORS / RECORD[name]["file"]).read_bytes())
    assert (d["made_by"], d["model"]) == (RECORD[name]["model"], RECORD[name]["pixels_by"])
