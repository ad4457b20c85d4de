"""eval/gpu/gpu_check.sh, the GPU path's check for a lent GPU machine, run here with --device cpu on one
vector and one small picture: it runs from the checkout, writes its table, and fails where it should."""
import json
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "eval" / "gpu" / "gpu_check.sh"


def check(out, *options):
    return subprocess.run(["bash", str(SCRIPT), str(out), *map(str, options)], capture_output=True, text=True,
                          timeout=600)


def test_the_check_decodes_a_vector_and_codes_a_picture_both_ways(tmp_path, small_photo):
    (tmp_path / "pictures").mkdir()
    Image.fromarray(small_photo).save(tmp_path / "pictures" / "a.png")
    r = check(tmp_path / "out", "--device", "cpu", "--images", tmp_path / "pictures", "--vectors", "chelsea-odd-top-prior",
              "--kit", tmp_path / "no-kit")
    assert r.returncode == 0, r.stderr
    record = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [v["vector"] for v in record["vectors"]] == ["chelsea-odd-top-prior"] and record["vectors"][0]["grid_exact"]
    (picture,) = record["images"]
    assert picture["cross_decodes"] and picture["same_bytes"] and picture["encode_cpu_s"] > 0
    assert (tmp_path / "out" / "gpu_check.md").read_text().startswith("# GPU check: PASSED")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_the_check_refuses_cuda_where_there_is_none(tmp_path):
    r = check(tmp_path / "out", "--device", "cuda", "--images", tmp_path)
    assert r.returncode != 0 and "no CUDA device" in r.stderr
