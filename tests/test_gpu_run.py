"""eval/gpu/gpu_run.sh, the lasting run's stretch on a lent GPU machine, run here on the CPU: it resumes a
state from packed crops and writes one that resumes again, within what such a machine can send back."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from skimage import data as skdata

from vqcodec.tokenizer import TokenizerConfig
from vqcodec.train.data import CropDataset, jpeg_bytes, write_pack
from vqcodec.train.tokenizer import TokenizerTrainConfig, train_tokenizer

ROOT = Path(__file__).parent.parent
TINY = TokenizerConfig(channels=(8, 16), unshuffle=2, code_dim=4, codebook_size=16, depth=2)


def crop_kit(tmp_path, side: int):
    """A kit whose crop pack holds two side x side regions."""
    kit = tmp_path / "kit"
    (kit / "crops").mkdir(parents=True)
    write_pack(kit / "crops" / "crops-00.npz", [jpeg_bytes(getattr(skdata, n)()[:side, :side]) for n in ("rocket", "cat")])
    return kit


def gpu_run(out, *args):
    """eval/gpu/gpu_run.sh OUT --device cpu ARGS..., its output captured."""
    return subprocess.run(["bash", str(ROOT / "eval" / "gpu" / "gpu_run.sh"), str(out), "--device", "cpu", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TQDM_DISABLE": "1",
                               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})


def test_crop_packs_serve_their_regions(tmp_path):
    regions = [skdata.astronaut()[:64, :64], skdata.coffee()[:64, :64]]
    write_pack(tmp_path / "crops-00.npz", [jpeg_bytes(r, 95) for r in regions])
    data = CropDataset(tmp_path, 32)
    assert len(data.images) == 2 and data.images[0].shape == (64, 64, 3)
    assert np.abs(data.images[0].astype(int) - regions[0]).mean() < 3  # JPEG at quality 95
    assert data.batch(3).shape == (3, 3, 32, 32)


def test_the_gpu_script_resumes_a_state_on_the_cpu_and_leaves_one_that_resumes(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skdata, name)()).resize((96, 64)).save(folder / f"{name}.png")
    state = tmp_path / "state"
    train_tokenizer(TokenizerTrainConfig(data=str(folder), out="", state=str(state), steps=10 ** 6, batch=2, crop=32,
                                         lpips_weight=0.0, disc_start=10 ** 6, stop_after=2, eval_every=0), TINY)
    kit = crop_kit(tmp_path, 48)
    steps = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        result = gpu_run(out, "--minutes", "0.7", "--state", str(state), "--kit", str(kit), "--batch", "2",
                         "--anneal", "0.1")
        assert result.returncode == 0, result.stderr[-3000:]
        files = [p for p in (out / "state").iterdir()]
        assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2 ** 20 for p in files)
        record = json.loads((out / "state" / "state.json").read_text())
        assert record["train"]["batch"] == 2 and record["train"]["data"] == str(folder)  # the run's own config
        first, anneal = record["stretches"][-2:]
        assert first["changes"] == {}  # batch 2 and no scoring: as the run was set up
        assert anneal["from_step"] == first["to_step"] < anneal["to_step"] == record["step"]
        assert anneal["changes"]["decay_from"] == first["to_step"]  # the learning rate fell to 0 at its last step
        steps.append(record["step"])
        state = out / "state"  # the next stretch resumes what this one wrote
    assert 2 < steps[0] < steps[1]


def test_the_gpu_script_trains_a_hierarchys_state_on_the_cpu_and_leaves_one_that_resumes(tmp_path):
    import torch

    from vqcodec.families import config_dict
    from vqcodec.hierarchy import FineConfig, Hierarchy
    from vqcodec.tokenizer import Tokenizer
    from vqcodec.train.state import save_state

    torch.manual_seed(0)
    fine = FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2)
    model = Hierarchy(Tokenizer(TINY), fine)
    state = tmp_path / "state"
    save_state(state, {"model": model.tok, "fine": model.fine}, {"step": 3, "model": config_dict(TINY),
                                                                 "fine": fine.to_dict()})
    kit = crop_kit(tmp_path, 128)
    steps = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        result = gpu_run(out, "--minutes", "0.6", "--state", str(state), "--kit", str(kit), "--batch", "2")
        assert result.returncode == 0, result.stderr[-3000:]
        record = json.loads((out / "state" / "state.json").read_text())
        assert record["fine"] == fine.to_dict() and record["stretches"][-1]["args"]["batch"] == "2"
        assert record["stretches"][-1]["from_step"] == (steps[-1] if steps else 3)
        steps.append(record["step"])
        state = out / "state"
    assert 3 < steps[0] < steps[1]
