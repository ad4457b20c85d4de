"""Training is resumable: stopping and resuming gives the very weights of an uninterrupted run; it
runs data-parallel under torchrun."""
import json
import os
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data as skdata

import vqcodec
from vqcodec.prior import PriorConfig
from vqcodec.tokenizer import TokenizerConfig
from vqcodec.train.prior import PriorTrainConfig, train_prior
from vqcodec.train.losses import FeatureDiscriminator, generator_gan_loss, lpips_features
from vqcodec.train.tokenizer import TokenizerTrainConfig, train_tokenizer

TINY = TokenizerConfig(channels=(8, 16), unshuffle=2, code_dim=4, codebook_size=16, depth=2)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(skdata, name)()).resize((96, 64)).save(folder / f"{name}.png")
    return folder


def tokenizer_run(folder, out, steps, stop_after=0):
    # lpips_weight=0: the test needs no LPIPS backbone download
    train_cfg = TokenizerTrainConfig(data=str(folder), out=str(out), steps=steps, batch=2, crop=32, lpips_weight=0.0,
                              disc_start=2, restart_every=3, ckpt_every=100, log_every=1, stop_after=stop_after)
    return train_tokenizer(train_cfg, TINY)


def weights(ckpt):
    return {k: v for k, v in load_file(str(ckpt.with_suffix(".safetensors"))).items()}


def test_tokenizer_resume_is_exact(image_folder, tmp_path):
    straight = weights(tokenizer_run(image_folder, tmp_path / "a", steps=5))
    tokenizer_run(image_folder, tmp_path / "b", steps=5, stop_after=2)
    resumed = weights(tokenizer_run(image_folder, tmp_path / "b", steps=5))
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert np.array_equal(straight[k].numpy(), resumed[k].numpy()), k
    log = (tmp_path / "b" / "tokenizer_log.jsonl").read_text().splitlines()
    assert len(log) == 5 and '"g"' in log[-1]  # every step logged once; the GAN was on at the end


def test_a_tokenizers_squared_error_weight_adds_to_its_loss_and_log(image_folder, tmp_path):
    """--mse-weight w adds w times the squared error to the reconstruction loss (which the GAN's adaptive
    weight balances) and logs it; without it the loss and the log are as before."""
    from vqcodec.train.losses import reconstruction_loss

    torch.manual_seed(0)
    x, rec, perceptual = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1, torch.tensor(0.25)
    plain, plain_parts = reconstruction_loss(rec, x, perceptual, lpips_weight=0.5)
    weighted, parts = reconstruction_loss(rec, x, perceptual, lpips_weight=0.5, mse_weight=3.0)
    assert plain.item() == pytest.approx((rec - x).abs().mean().item() + 0.5 * 0.25, rel=1e-6)
    assert "mse" not in plain_parts and parts["mse"] == pytest.approx((rec - x).square().mean().item())
    assert weighted.item() == pytest.approx(plain.item() + 3.0 * parts["mse"], rel=1e-6)
    from click.testing import CliRunner

    from vqcodec.cli import main
    from vqcodec.train.state import read_record

    state = tmp_path / "state"
    lasting_run(image_folder, state, stop_after=2)
    result = CliRunner().invoke(main, ["train", "tokenizer", str(image_folder), "--resume", str(state), "--steps", "4",
                                       "--mse-weight", "3", "--freeze-encoder"])
    assert result.exit_code == 0, result.output
    record = read_record(state)
    assert record["train"]["mse_weight"] == 0.0  # the run's own loss; this stretch's is its change
    assert record["stretches"][-1]["changes"] == {"steps": 4, "mse_weight": 3.0, "freeze_encoder": True}
    log = [json.loads(line) for line in (state / "log.jsonl").read_text().splitlines()]
    assert "mse" not in log[1] and all(line["mse"] > 0 for line in log[2:4])


def test_prior_resume_is_exact(image_folder, tmp_path):
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    results = []
    for run, stops in (("a", [0]), ("b", [3, 0])):
        tokenizer_run(image_folder, tmp_path / run, steps=2)
        for stop in stops:
            train_cfg = PriorTrainConfig(data=str(image_folder), out=str(tmp_path / run), steps=6, batch=4, lr=1e-2,
                                  warmup=1, eval_every=3, ckpt_every=100, holdout=0.5, stop_after=stop)
            ckpt = train_prior(train_cfg, prior_cfg)
        results.append(weights(ckpt))
    for k in results[0]:
        assert np.array_equal(results[0][k].numpy(), results[1][k].numpy()), k


def test_prior_trains_under_bf16_autocast(image_folder, tmp_path):
    """--precision bf16 changes the arithmetic of the steps, not what the prior learns: the bf16 loss
    matches fp32's, and a bf16 run lowers the held-out bits it measures in fp32."""
    from vqcodec.prior import PriorModel
    from vqcodec.train.prior import tile_loss

    torch.manual_seed(0)
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    tiles = torch.randint(0, 16, (4, 4, 4, 2))
    prior = PriorModel(prior_cfg)
    assert tile_loss(prior, tiles, bf16=True).item() == pytest.approx(tile_loss(prior, tiles).item(), rel=0.02)
    tokenizer_run(image_folder, tmp_path, steps=2)
    train_cfg = PriorTrainConfig(data=str(image_folder), out=str(tmp_path), steps=40, batch=8, lr=1e-2, warmup=1,
                                 eval_every=2, ckpt_every=100, holdout=0.5, precision="bf16")
    train_prior(train_cfg, prior_cfg)
    held = [json.loads(line)["heldout_bits"] for line in (tmp_path / "prior_log.jsonl").read_text().splitlines()
            if "heldout_bits" in line]
    assert held[-1]["1"] < held[0]["1"]


def test_data_parallel_training_keeps_replicas_identical(image_folder, tmp_path):
    """Two CPU processes under torchrun (gloo): different crops, averaged gradients, the same weights."""
    worker = Path(__file__).parent / "ddp_train.py"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", str(29500 + os.getpid() % 1000), str(worker), str(image_folder),
                             str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((tmp_path / "tokenizer_ckpt.json").read_text())
    assert meta["step"] == 4 and meta["world_size"] == 2
    assert len(meta["replicas"]) == 2 and meta["replicas"][0] == meta["replicas"][1]
    first, second = meta["data_rng_per_rank"]
    assert first != second  # the two processes drew different crops


def test_a_new_run_can_start_from_a_model_folder_with_more_depths(image_folder, tmp_path):
    from safetensors.torch import save_file

    from vqcodec.tokenizer import Tokenizer

    source = tmp_path / "model"
    source.mkdir()
    trained = weights(tokenizer_run(image_folder, tmp_path / "a", steps=2))
    tokenizer_keys = Tokenizer(TINY).state_dict().keys()
    save_file({k: trained[f"model.{k}"].half() for k in tokenizer_keys}, str(source / "tokenizer.safetensors"))
    (source / "config.json").write_text(json.dumps({"tokenizer": TINY.to_dict()}))
    deeper = replace(TINY, depth=3)
    train_cfg = TokenizerTrainConfig(data=str(image_folder), out=str(tmp_path / "b"), steps=1, batch=2, crop=32, lr=0.0,
                              lpips_weight=0.0, init_from=str(source))
    started = weights(train_tokenizer(train_cfg, deeper))
    np.testing.assert_array_equal(started["model.quantizer.codebooks"][:2].numpy(),
                                  trained["model.quantizer.codebooks"].half().float().numpy())
    np.testing.assert_array_equal(started["model.decoder.last.weight"].numpy(),
                                  trained["model.decoder.last.weight"].half().float().numpy())
    assert started["model.quantizer.codebooks"][2].abs().sum() > 0  # the new depth was initialised


def test_a_wider_code_keeps_what_the_model_folder_decoded(image_folder, tmp_path):
    from safetensors.torch import save_file

    from vqcodec.tokenizer import Tokenizer
    from vqcodec.train.tokenizer import warm_start

    source = tmp_path / "model"
    source.mkdir()
    trained = Tokenizer(TINY)
    save_file({k: v.half() for k, v in trained.state_dict().items()}, str(source / "tokenizer.safetensors"))
    (source / "config.json").write_text(json.dumps({"tokenizer": TINY.to_dict()}))
    narrow, wide = Tokenizer(TINY), Tokenizer(replace(TINY, code_dim=2 * TINY.code_dim))
    assert warm_start(narrow, source) == TINY.depth
    assert warm_start(wide, source) == 0  # codebooks of another width cannot be kept
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = wide.encoder(x)
        torch.testing.assert_close(z[:, :TINY.code_dim], narrow.encoder(x))
        torch.testing.assert_close(wide.decoder(z), narrow.decoder(z[:, :TINY.code_dim]))
        assert z[:, TINY.code_dim:].abs().max() > 0  # the new channels carry something to learn from
    with pytest.raises(ValueError, match="beyond adding"):
        warm_start(Tokenizer(replace(TINY, code_dim=TINY.code_dim // 2)), source)


def test_discriminator_warms_up_before_the_generator_follows_it(image_folder, tmp_path):
    train_cfg = TokenizerTrainConfig(data=str(image_folder), out=str(tmp_path), steps=4, batch=2, crop=32, lpips_weight=0.0,
                              disc_start=3, disc_warmup=2, log_every=1)
    ckpt = train_tokenizer(train_cfg, TINY)
    log = [json.loads(line) for line in (tmp_path / "tokenizer_log.jsonl").read_text().splitlines()]
    assert [("d" in r, "lam" in r) for r in log] == [(False, False), (True, False), (True, False), (True, True)]
    fresh = weights(tokenizer_run(image_folder, tmp_path / "no_gan", steps=1))  # a discriminator never trained
    trained = weights(ckpt)
    assert not np.array_equal(fresh["disc.net.0.weight"].numpy(), trained["disc.net.0.weight"].numpy())


def run_with_prior_and_new_decoder(image_folder, run):
    """A tokenizer run, a prior on its grids, then a few decoder-only steps; returns the decoder-only config."""
    tokenizer_run(image_folder, run, steps=2)
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    train_prior(PriorTrainConfig(data=str(image_folder), out=str(run), steps=2, batch=4, warmup=1, eval_every=100,
                                 holdout=0.5), prior_cfg)
    train_cfg = TokenizerTrainConfig(data=str(image_folder), out=str(run), steps=3, batch=2, crop=32, lpips_weight=0.0,
                              disc_start=100, freeze_encoder=True)
    train_tokenizer(train_cfg, TINY)  # the decoder moves, the token grids do not: the prior still fits
    return train_cfg


def test_export_refuses_a_prior_trained_on_another_encoders_tokens(image_folder, tmp_path):
    from vqcodec.train.export import export_run

    run = tmp_path / "run"
    train_cfg = run_with_prior_and_new_decoder(image_folder, run)
    export_run(run, tmp_path / "model", 1)
    model = vqcodec.load_model(tmp_path / "model")
    data = vqcodec.compress(Image.open(next(image_folder.glob("*.png"))), model=model)
    assert vqcodec.decompress(data, model=model).size == (96, 64)
    train_tokenizer(replace(train_cfg, steps=4, freeze_encoder=False), TINY)
    with pytest.raises(ValueError, match="another encoder"):
        export_run(run, tmp_path / "model2", 1)


def test_a_new_decoder_reads_the_files_of_the_model_it_replaces(image_folder, tmp_path, monkeypatch):
    from vqcodec.codec import decode_grid
    from vqcodec.train.export import export_run, files_it_reads

    run = tmp_path / "run"
    train_cfg = run_with_prior_and_new_decoder(image_folder, run)
    export_run(run, tmp_path / "old", 1)
    train_tokenizer(replace(train_cfg, steps=6), TINY)  # three more decoder-only steps
    export_run(run, tmp_path / "new", 1, reads_files_of=tmp_path / "old")
    old, new = vqcodec.load_model(tmp_path / "old"), vqcodec.load_model(tmp_path / "new")
    assert old.model_id != new.model_id
    image = Image.open(next(image_folder.glob("*.png")))
    data = vqcodec.compress(image, model=old)
    np.testing.assert_array_equal(decode_grid(data, model=new)[1].indices, decode_grid(data, model=old)[1].indices)
    assert not np.array_equal(np.asarray(vqcodec.decompress(data, model=new)),
                              np.asarray(vqcodec.decompress(data, model=old)))
    monkeypatch.setitem(vqcodec.zoo.MODELS, "new-model", tmp_path / "new")  # shipped instead of the old one
    assert vqcodec.decompress(data) == vqcodec.decompress(data, model=new)
    with pytest.raises(vqcodec.ModelMismatch):  # the old model cannot read the new one's files
        vqcodec.decompress(vqcodec.compress(image, model=new), model=old)
    with torch.no_grad():
        new.tokenizer.quantizer.codebooks[0, 0] += 1
    with pytest.raises(ValueError, match="codebooks"):
        files_it_reads(tmp_path / "old", new.tokenizer, new.prior.cfg,
                       load_file(str(tmp_path / "new" / "prior_int8.safetensors")))


def test_a_shipped_model_takes_a_new_decoder_and_keeps_its_prior(image_folder, tmp_path):
    """export-decoder needs no prior run: the shipped model's integer prior and grids are kept as they are."""
    from click.testing import CliRunner

    from vqcodec.cli import main
    from vqcodec.codec import decode_grid
    from vqcodec.train.export import export_decoder, export_run

    run = tmp_path / "run"
    train_cfg = run_with_prior_and_new_decoder(image_folder, run)
    export_run(run, tmp_path / "old", 1)
    train_tokenizer(replace(train_cfg, steps=6), TINY)  # three more decoder-only steps
    result = CliRunner().invoke(main, ["train", "export-decoder", str(tmp_path / "old"), str(run),
                                       str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    old, new = vqcodec.load_model(tmp_path / "old"), vqcodec.load_model(tmp_path / "new")
    prior = "prior_int8.safetensors"
    assert (tmp_path / "new" / prior).read_bytes() == (tmp_path / "old" / prior).read_bytes()
    image = Image.open(next(image_folder.glob("*.png")))
    data = vqcodec.compress(image, model=old)
    ours = vqcodec.compress(image, model=new)
    assert len(ours) == len(data)  # the same grid, coded with the same prior
    np.testing.assert_array_equal(decode_grid(ours, model=new)[1].indices, decode_grid(data, model=old)[1].indices)
    np.testing.assert_array_equal(decode_grid(data, model=new)[1].indices, decode_grid(data, model=old)[1].indices)
    assert not np.array_equal(np.asarray(vqcodec.decompress(data, model=new)),
                              np.asarray(vqcodec.decompress(data, model=old)))
    train_tokenizer(replace(train_cfg, steps=7, freeze_encoder=False), TINY)
    with pytest.raises(ValueError, match="not a decoder-only run"):
        export_decoder(tmp_path / "old", run, tmp_path / "moved")


def test_training_reads_pictures_upright_as_the_codec_does(tmp_path):
    from vqcodec.images import to_rgb
    from vqcodec.train.data import CropDataset

    upright = np.asarray(Image.fromarray(skdata.astronaut()).resize((96, 64)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter, to be shown rotated 90 degrees clockwise
    Image.fromarray(np.rot90(upright)).save(tmp_path / "turned.png", exif=exif)
    shown = to_rgb(tmp_path / "turned.png")
    assert np.array_equal(shown, upright)
    assert np.array_equal(CropDataset(tmp_path, crop=32).images[0], shown)


def lasting_run(folder, state, stop_after, out="", steps=100, **changes):
    train_cfg = TokenizerTrainConfig(data=str(folder), out=str(out), state=str(state), steps=steps, batch=2, crop=32,
                                     lpips_weight=0.0, disc_start=1000, restart_every=3, ckpt_every=100,
                                     stop_after=stop_after, ancestor_pixels=5000, log_every=1, **changes)
    return train_tokenizer(train_cfg, TINY)


def test_a_run_lives_on_in_its_lasting_state(image_folder, tmp_path):
    """The state alone (fp16 weights + state.json) carries a run on: its step, its pixels, its clocks."""
    from vqcodec.train.state import read_record

    state = tmp_path / "state"
    lasting_run(image_folder, state, stop_after=2)
    first = read_record(state)
    saved = load_file(str(state / "model.safetensors"))
    assert sorted(p.name for p in state.iterdir()) == ["log.jsonl", "model.safetensors", "state.json"]
    assert all(v.dtype == torch.float16 for v in saved.values())  # no discriminator before it trains
    assert first["step"] == 2 and first["train_pixels"] == 5000 + 2 * 2 * 32 ** 2
    assert TokenizerConfig.from_dict(first["model"]) == TINY and first["train"]["stop_after"] == 2
    lasting_run(image_folder, state, stop_after=3)
    second = read_record(state)
    assert second["step"] == 5 and second["train_pixels"] == 5000 + 5 * 2 * 32 ** 2
    # the clocks carry on (recorded to 0.1 s, which a tiny run on a fast machine may not reach)
    for clock in ("cpu_seconds", "wall_seconds"):
        assert second[clock] >= first[clock]
        assert second[clock] == pytest.approx(sum(s[clock] for s in second["stretches"]), abs=0.11)
    assert [(s["from_step"], s["to_step"], s["warm_restart"]) for s in second["stretches"]] == [(0, 2, False),
                                                                                              (2, 5, True)]
    assert second["warm_restart_step"] == 2
    assert not np.array_equal(saved["decoder.last.weight"].numpy(),
                              load_file(str(state / "model.safetensors"))["decoder.last.weight"].numpy())


def test_a_warm_restart_starts_from_the_states_weights(image_folder, tmp_path):
    from vqcodec.train import tokenizer as training
    from vqcodec.train.state import read_record

    state = tmp_path / "state"
    lasting_run(image_folder, state, stop_after=2)
    cfg = TokenizerTrainConfig(data=str(image_folder), out="", state=str(state), lpips_weight=0.0)
    run = training._start_run(cfg, None, tmp_path / "none" / "tokenizer_ckpt", 0, 1, torch.device("cpu"))
    saved = load_file(str(state / "model.safetensors"))
    for k, v in run.model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), saved[k].to(v.dtype).numpy(), err_msg=k)
    assert run.step == read_record(state)["step"] == run.warm_restart_step


def test_the_newer_of_exact_checkpoint_and_lasting_state_is_resumed(image_folder, tmp_path):
    from vqcodec.train.state import read_record

    state, scratch = tmp_path / "state", tmp_path / "scratch"
    lasting_run(image_folder, state, stop_after=2, out=scratch)
    lasting_run(image_folder, state, stop_after=1, out=scratch)  # the exact checkpoint is as new: no warm restart
    assert [s["warm_restart"] for s in read_record(state)["stretches"]] == [False, False]
    lasting_run(image_folder, state, stop_after=2)  # the state moves on, the scratch folder stays at step 3
    lasting_run(image_folder, state, stop_after=1, out=scratch)
    record = read_record(state)
    assert record["step"] == 6
    assert [s["warm_restart"] for s in record["stretches"]] == [False, False, True, True]


def test_a_state_too_large_to_carry_is_refused(image_folder, tmp_path, monkeypatch):
    from vqcodec.train import state as lasting

    monkeypatch.setattr(lasting, "MAX_FILE_BYTES", 1000)  # below the largest tensor
    with pytest.raises(lasting.StateTooLarge, match="at most 1000 bytes"):
        lasting_run(image_folder, tmp_path / "state", stop_after=1)
    monkeypatch.setattr(lasting, "MAX_FILE_BYTES", 10 ** 6)
    monkeypatch.setattr(lasting, "MAX_STATE_BYTES", 1000)
    with pytest.raises(lasting.StateTooLarge, match="at most 1000 bytes in all"):
        lasting_run(image_folder, tmp_path / "state", stop_after=1)


def test_a_module_larger_than_a_file_may_be_is_split_and_read_whole(image_folder, tmp_path, monkeypatch):
    from vqcodec.families import read_tokenizer
    from vqcodec.train import state as lasting

    lasting_run(image_folder, tmp_path / "whole", stop_after=2)
    monkeypatch.setattr(lasting, "MAX_FILE_BYTES", 6000)  # above the largest tensor, below the model
    lasting_run(image_folder, tmp_path / "split", stop_after=2)
    files = sorted(p.name for p in (tmp_path / "split").glob("*.safetensors"))
    assert len(files) > 2 and all(p.stat().st_size < 6000 + 1000 for p in (tmp_path / "split").glob("*.safetensors"))
    listed = lasting.read_record(tmp_path / "split")["files"]["model"]
    assert listed[0] == "model.safetensors" and sorted(listed) == files
    whole, split = read_tokenizer(tmp_path / "whole")[0], read_tokenizer(tmp_path / "split")[0]
    for (k, a), (_, b) in zip(whole.state_dict().items(), split.state_dict().items()):
        assert torch.equal(a, b), k
    lasting_run(image_folder, tmp_path / "split", stop_after=1)  # it resumes, and writes it again
    assert lasting.read_record(tmp_path / "split")["step"] == 3


def test_held_out_pictures_are_never_trained_on(image_folder):
    from vqcodec.train.data import CropDataset

    everything = CropDataset(image_folder, 32)
    trained = CropDataset(image_folder, 32, held_out_every=2)
    assert len(everything.images) == 4 and len(trained.images) == 2
    assert [a.tobytes() for a in trained.images] == [everything.images[k].tobytes() for k in (1, 3)]


def test_several_training_folders_each_keep_their_held_out_pictures(image_folder, tmp_path):
    import shutil

    from click.testing import CliRunner

    from vqcodec.cli import main
    from vqcodec.train.data import CropDataset

    extra = tmp_path / "extra"
    shutil.copytree(image_folder, extra)
    (extra / "more.png").write_bytes((image_folder / "rocket.png").read_bytes())
    both = CropDataset(f"{image_folder}{os.pathsep}{extra}", 32, held_out_every=2)
    alone = [CropDataset(folder, 32, held_out_every=2) for folder in (image_folder, extra)]
    assert [a.tobytes() for a in both.images] == [a.tobytes() for d in alone for a in d.images]
    assert len(both.images) == 2 + 2  # each folder's every 2nd image held out, counted from its own first
    result = CliRunner().invoke(main, ["train", "tokenizer", str(image_folder), str(extra), "--run", str(tmp_path / "run"),
                                       "--steps", "1", "--batch", "2", "--crop", "32", "--eval-every", "0",
                                       "--disc-start", "100"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "run" / "tokenizer_ckpt.json").read_text())
    assert record["train"]["data"] == f"{image_folder}{os.pathsep}{extra}" == record["stretches"][-1]["data"]


def test_projected_discriminator_learns_on_frozen_features_and_checkpoints_only_its_heads(image_folder, tmp_path):
    from vqcodec.metrics import load_lpips

    backbone = {k: v.clone() for k, v in load_lpips().net.state_dict().items()}
    train_cfg = TokenizerTrainConfig(data=str(image_folder), out=str(tmp_path), steps=4, batch=2, crop=32,
                                     lpips_weight=0.0, disc_start=3, disc_warmup=2, log_every=1,
                                     discriminator="projected", state=str(tmp_path / "state"))
    ckpt = train_tokenizer(train_cfg, TINY)
    log = [json.loads(line) for line in (tmp_path / "state" / "log.jsonl").read_text().splitlines()]
    assert [("d" in r, "lam" in r) for r in log] == [(False, False), (True, False), (True, False), (True, True)]
    assert all(np.isfinite(r["d"]) for r in log[1:]) and np.isfinite(log[-1]["g"])
    trained = weights(ckpt)
    heads = [k for k in trained if k.startswith("disc.")]
    assert heads and all(k.startswith("disc.heads.") for k in heads)  # the frozen AlexNet is not saved
    fresh = FeatureDiscriminator().state_dict()
    moved = [k for k in heads if k.endswith("original") and
             not torch.equal(trained[k].float(), fresh[k.removeprefix("disc.")].float())]
    assert moved  # the heads trained
    for k, v in load_lpips().net.state_dict().items():
        assert torch.equal(v, backbone[k]), k  # and the backbone did not
    assert "disc" in json.loads((tmp_path / "state" / "state.json").read_text())["modules"]


def test_projected_discriminator_gives_the_generator_a_gradient():
    from vqcodec.metrics import load_lpips

    lpips_model, disc = load_lpips(), FeatureDiscriminator()
    fake = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    logits = disc(lpips_features(lpips_model, fake))
    assert [tuple(l.shape[:2]) for l in logits] == [(2, 1)] * 5
    generator_gan_loss(logits).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_an_unknown_discriminator_is_refused(image_folder, tmp_path):
    with pytest.raises(ValueError, match="no discriminator 'stylegan'"):
        train_tokenizer(TokenizerTrainConfig(data=str(image_folder), out=str(tmp_path), discriminator="stylegan"), TINY)


def test_a_gan_branch_of_a_lasting_run_is_set_on_the_command_line(image_folder, tmp_path):
    """A stretch may switch the projected GAN on; the run's own config stays as it was set up."""
    from click.testing import CliRunner

    from vqcodec.cli import main
    from vqcodec.train.state import read_record

    state = tmp_path / "state"
    lasting_run(image_folder, state, stop_after=2)
    result = CliRunner().invoke(main, ["train", "tokenizer", str(image_folder), "--resume", str(state), "--steps", "4",
                                       "--discriminator", "projected", "--disc-weight", "0.2", "--disc-start", "3",
                                       "--disc-warmup", "1"])
    assert result.exit_code == 0, result.output
    record = read_record(state)
    assert record["step"] == 4 and record["train"]["discriminator"] == "patchgan"
    assert record["stretches"][-1]["changes"] == {"steps": 4, "discriminator": "projected", "disc_weight": 0.2,
                                                  "disc_start": 3, "disc_warmup": 1}
    log = [json.loads(line) for line in (state / "log.jsonl").read_text().splitlines()]
    assert "lam" in log[-1] and "d" in log[-2] and "lam" not in log[-2]


def test_the_learning_rate_falls_to_zero_from_decay_from_to_the_last_step(image_folder, tmp_path):
    """A stretch that anneals the run: constant until --decay-from, then falling, the same curve whether or
    not the stretch stops and resumes on the way."""
    state, steps = tmp_path / "state", 8
    lasting_run(image_folder, state, stop_after=steps, out=tmp_path / "whole", steps=steps, decay_from=4, warmup=1)
    whole = [json.loads(line)["lr"] for line in (state / "log.jsonl").read_text().splitlines()]
    assert whole[:5] == [2e-4] * 5
    assert all(later < earlier for earlier, later in zip(whole[4:], whole[5:])) and whole[-1] < 0.2 * 2e-4
    resumed = tmp_path / "resumed"
    for stop_after in (5, 3):
        lasting_run(image_folder, resumed, stop_after=stop_after, out=tmp_path / "parts", steps=steps, decay_from=4,
                    warmup=1)
    assert [json.loads(line)["lr"] for line in (resumed / "log.jsonl").read_text().splitlines()] == whole


def test_a_decay_that_starts_after_the_last_step_is_refused(image_folder, tmp_path):
    with pytest.raises(ValueError, match="decay_from"):
        lasting_run(image_folder, tmp_path / "state", stop_after=2, steps=8, decay_from=8)


def test_a_model_ships_from_a_lasting_state(image_folder, tmp_path):
    """The prior learns the state's grids and export takes the state's tokenizer: no exact checkpoint needed."""
    from click.testing import CliRunner

    from vqcodec.cli import main
    from vqcodec.train.export import export_run

    state, run = tmp_path / "state", tmp_path / "prior_run"
    lasting_run(image_folder, state, stop_after=2)
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    train_prior(PriorTrainConfig(data=str(image_folder), out=str(run), tokenizer=str(state), steps=2, batch=4,
                                 warmup=1, eval_every=100, holdout=0.5), prior_cfg)
    assert not (run / "tokenizer_ckpt.json").exists()
    result = CliRunner().invoke(main, ["train", "export", str(run), str(tmp_path / "model"), "--default-quality", "1",
                                       "--tokenizer", str(state)])
    assert result.exit_code == 0, result.output
    model = vqcodec.load_model(tmp_path / "model")
    data = vqcodec.compress(Image.open(next(image_folder.glob("*.png"))), model=model)
    assert vqcodec.decompress(data, model=model).size == (96, 64)
    lasting_run(image_folder, state, stop_after=2)  # the state trains on: its grids are no longer the prior's
    with pytest.raises(ValueError, match="another encoder"):
        export_run(run, tmp_path / "model2", 1, tokenizer_from=state)
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        export_run(run, tmp_path / "model3", 1)


def test_a_prior_lives_on_in_its_lasting_state(image_folder, tmp_path):
    """A prior's state carries it to a fresh machine (a new run folder): it goes on from its step and its
    weights, and refuses the grids of another encoder."""
    from vqcodec.train.state import read_record

    state, prior_state = tmp_path / "state", tmp_path / "prior_state"
    lasting_run(image_folder, state, stop_after=2)
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)

    def prior_run(run, stop_after=0):
        return train_prior(PriorTrainConfig(data=str(image_folder), out=str(tmp_path / run), tokenizer=str(state),
                                            state=str(prior_state), steps=6, batch=4, lr=1e-2, warmup=1,
                                            eval_every=3, ckpt_every=100, holdout=0.5, stop_after=stop_after),
                           prior_cfg)

    prior_run("first_machine", stop_after=3)
    first = read_record(prior_state)
    saved = load_file(str(prior_state / "prior.safetensors"))
    assert first["step"] == 3 and all(v.dtype == torch.float16 for v in saved.values() if v.is_floating_point())
    assert PriorConfig.from_dict(first["model"]) == prior_cfg
    ckpt = prior_run("second_machine")
    log = [json.loads(line) for line in (tmp_path / "second_machine" / "prior_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [4, 5, 6]  # it went on from step 3, not from 0
    assert read_record(prior_state)["step"] == 6 and read_record(prior_state)["warm_restart_step"] == 3
    assert json.loads(ckpt.with_suffix(".json").read_text())["step"] == 6
    # a finished state on yet another machine trains no step, and gives a run folder export takes
    from vqcodec.train.export import export_run

    finished = prior_run("export_machine")
    assert json.loads(finished.with_suffix(".json").read_text())["step"] == 6
    assert not (tmp_path / "export_machine" / "prior_log.jsonl").exists()
    export_run(tmp_path / "export_machine", tmp_path / "model", 1, tokenizer_from=state)
    model = vqcodec.load_model(tmp_path / "model")
    data = vqcodec.compress(Image.open(next(image_folder.glob("*.png"))), model=model)
    assert vqcodec.decompress(data, model=model).size == (96, 64)
    lasting_run(image_folder, state, stop_after=2)  # the encoder moves on: its grids are new
    with pytest.raises(ValueError, match="another encoder"):
        prior_run("third_machine")


def test_a_priors_warm_restart_starts_from_the_states_weights(image_folder, tmp_path):
    from vqcodec.train import prior as prior_training

    state, prior_state = tmp_path / "state", tmp_path / "prior_state"
    lasting_run(image_folder, state, stop_after=2)
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    cfg = PriorTrainConfig(data=str(image_folder), out=str(tmp_path / "a"), tokenizer=str(state),
                           state=str(prior_state), steps=6, batch=4, warmup=1, eval_every=100, holdout=0.5,
                           stop_after=2)
    train_prior(cfg, prior_cfg)
    fresh = replace(cfg, out=str(tmp_path / "b"))
    (tmp_path / "b").mkdir()
    tokenizer, tokens, grids, _ = prior_training._prior_data(fresh, tmp_path / "b")
    prior, _, _, where = prior_training._start(fresh, None, tokenizer, tokens, tmp_path / "b" / "prior_ckpt", grids)
    saved = load_file(str(prior_state / "prior.safetensors"))
    for k, v in prior.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), saved[k].to(v.dtype).numpy(), err_msg=k)
    assert where == {"step": 2, "wall_seconds": where["wall_seconds"], "warm_restart_step": 2}


def test_a_prior_of_an_earlier_encoder_starts_a_new_run_on_the_new_grids(image_folder, tmp_path):
    """--init: the state of a prior of grids that have since moved gives a new run its first weights; the run
    starts at step 0 with its own schedule and writes its own lasting state."""
    from vqcodec.train import prior as prior_training
    from vqcodec.train.state import read_record

    state, old_prior = tmp_path / "state", tmp_path / "old_prior"
    lasting_run(image_folder, state, stop_after=2)
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    cfg = PriorTrainConfig(data=str(image_folder), out=str(tmp_path / "a"), tokenizer=str(state),
                           state=str(old_prior), steps=6, batch=4, warmup=1, eval_every=100, holdout=0.5,
                           stop_after=2)
    train_prior(cfg, prior_cfg)
    lasting_run(image_folder, state, stop_after=2)  # the encoder moves on: the old prior's grids are gone
    new = replace(cfg, out=str(tmp_path / "b"), state=str(tmp_path / "new_prior"), init=str(old_prior), stop_after=0)
    (tmp_path / "b").mkdir()
    tokenizer, tokens, grids, _ = prior_training._prior_data(new, tmp_path / "b")
    prior, _, _, where = prior_training._start(new, None, tokenizer, tokens, tmp_path / "b" / "prior_ckpt", grids)
    saved = load_file(str(old_prior / "prior.safetensors"))
    for k, v in prior.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), saved[k].to(v.dtype).numpy(), err_msg=k)
    assert prior.cfg == prior_cfg and where["step"] == 0
    train_prior(new)
    assert read_record(tmp_path / "new_prior")["step"] == 6
    assert read_record(tmp_path / "new_prior")["tokens"] == tokens != read_record(old_prior)["tokens"]


def test_a_deeper_decoder_grown_from_a_model_ships_as_a_decoder_of_that_model(image_folder, tmp_path):
    """A new run with more decoder blocks, started from a model folder with its encoder frozen, keeps the
    model's grids: export-decoder ships it with the model's prior, and it reads the model's files."""
    from vqcodec.codec import decode_grid
    from vqcodec.train.export import export_decoder, export_run

    run = tmp_path / "run"
    run_with_prior_and_new_decoder(image_folder, run)
    export_run(run, tmp_path / "old", 1)
    grown = replace(TINY, decoder_blocks=(2, 3))
    train_tokenizer(TokenizerTrainConfig(data=str(image_folder), out=str(tmp_path / "grown"), steps=3, batch=2,
                                         crop=32, lpips_weight=0.0, disc_start=100, freeze_encoder=True,
                                         init_from=str(tmp_path / "old")), grown)
    export_decoder(tmp_path / "old", tmp_path / "grown", tmp_path / "new")
    old, new = vqcodec.load_model(tmp_path / "old"), vqcodec.load_model(tmp_path / "new")
    assert new.tokenizer.cfg.decoder_blocks == (2, 3)
    data = vqcodec.compress(Image.open(next(image_folder.glob("*.png"))), model=old)
    np.testing.assert_array_equal(decode_grid(data, model=new)[1].indices, decode_grid(data, model=old)[1].indices)
    assert vqcodec.decompress(data, model=new).size == (96, 64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_prior_and_tokenizer_train_on_the_device_they_are_given(image_folder, tmp_path):
    from vqcodec.train import prior as prior_training

    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    tokenizer_run(image_folder, tmp_path / "run", steps=2)
    seen = []
    step = prior_training._train_step
    prior_training._train_step = lambda cfg, prior, *a: seen.append(prior.code_emb.weight.device.type) or step(cfg, prior, *a)
    try:
        train_prior(PriorTrainConfig(data=str(image_folder), out=str(tmp_path / "run"), steps=2, batch=4, warmup=1,
                                     eval_every=100, holdout=0.5, device="cuda"), prior_cfg)
    finally:
        prior_training._train_step = step
    assert seen == ["cuda", "cuda"]


def tiny_hierarchy_run(tmp_path):
    """A small hierarchy's lasting state (step 3), three pictures (the first held out, and scored: >= 256 px)
    and the fine prior's training arguments."""
    from vqcodec.families import config_dict
    from vqcodec.hierarchy import FineConfig, Hierarchy
    from vqcodec.tokenizer import Tokenizer
    from vqcodec.train.state import save_state

    torch.manual_seed(0)
    fine = FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2)
    model = Hierarchy(Tokenizer(TINY), fine)
    torch.nn.init.normal_(model.fine.synthesis[-1].weight, std=0.1)
    save_state(tmp_path / "hierarchy", {"model": model.tok, "fine": model.fine},
               {"step": 3, "model": config_dict(TINY), "fine": fine.to_dict()})
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skdata, name)()).resize((288, 256)).save(pictures / f"{name}.png")
    return [str(tmp_path / "hierarchy"), str(pictures), "--state", str(tmp_path / "prior"), "--cache",
            str(tmp_path / "cache"), "--cpu-minutes", "0.03", "--width", "8", "--layers", "1", "--batch", "2",
            "--crop", "4", "--quiet"]


def test_a_hierarchy_trains_its_fine_side_over_a_frozen_tokenizer_and_lives_on_in_its_lasting_state(image_folder,
                                                                                                        tmp_path, capfd):
    """A new state starts from a tokenizer and resumes from the state alone on another machine, its codebooks
    training on; the tokenizer's weights never move. Quiet, it prints nothing."""
    from vqcodec.families import read_tokenizer
    from vqcodec.hierarchy import FineConfig, read_hierarchy
    from vqcodec.train.hierarchy import HierarchyTrainConfig, train_hierarchy

    tokenizer_run(image_folder, tmp_path / "run", steps=2)
    fine = FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2)
    cfg = HierarchyTrainConfig(data=(str(image_folder),), state=str(tmp_path / "state"), tokenizer="",
                               minutes=0.02, batch=2, crop=32, save_every=1, held_out_every=0, quiet=True)
    with pytest.raises(ValueError, match="holds no hierarchy state"):
        train_hierarchy(cfg, fine)
    capfd.readouterr()
    first = train_hierarchy(replace(cfg, tokenizer=str(tmp_path / "run")), fine)
    assert capfd.readouterr() == ("", "")
    assert first["step"] > 0 and first["train_pixels"] == first["step"] * 2 * 32 * 32
    assert first["fine"] == fine.to_dict() and first["ancestor"]["state"] == str(tmp_path / "run")
    model, _ = read_hierarchy(tmp_path / "state")
    tok = read_tokenizer(tmp_path / "run")[0]
    for k, v in tok.state_dict().items():  # frozen (the state keeps it in fp16)
        np.testing.assert_allclose(model.tok.state_dict()[k].numpy(), v.numpy(), atol=1e-3, rtol=1e-3, err_msg=k)
    codebooks = model.fine.quantizer.codebooks.detach().clone()
    again = train_hierarchy(cfg, fine)  # no tokenizer needed any more: the state has it
    assert again["step"] > first["step"] and again["cpu_seconds"] > first["cpu_seconds"]
    assert [s["from_step"] for s in again["stretches"]] == [0, first["step"]]
    assert not torch.equal(read_hierarchy(tmp_path / "state")[0].fine.quantizer.codebooks, codebooks)
    grown = train_hierarchy(replace(cfg, synthesis_blocks=2), fine)  # the synthesis grows in place
    assert grown["fine"]["synthesis_blocks"] == 2 and grown["step"] > again["step"]
    assert read_hierarchy(tmp_path / "state")[0].fine.cfg.synthesis_blocks == 2
    refined = train_hierarchy(replace(cfg, refine_width=4), fine)  # and gains an f4 stage
    assert refined["fine"]["refine_width"] == 4 and refined["fine"]["synthesis_blocks"] == 2
    assert read_hierarchy(tmp_path / "state")[0].fine.refine is not None
    own = train_hierarchy(replace(cfg, own_decoder=True), fine)  # and its own f16 decoder, which trains
    assert own["fine"]["own_decoder"] and own["step"] > refined["step"]
    model = read_hierarchy(tmp_path / "state")[0]
    assert model.fine.decoder is not None
    assert any(not torch.equal(model.fine.decoder.state_dict()[k], v) for k, v in model.tok.decoder.state_dict().items())
    for k, v in tok.state_dict().items():  # while the tokenizer's stays
        np.testing.assert_allclose(model.tok.state_dict()[k].numpy(), v.numpy(), atol=1e-3, rtol=1e-3, err_msg=k)


def test_a_hierarchy_reusing_batches_trains_each_at_most_reuse_steps_and_draws_one_per_reuse_steps(
        image_folder, tmp_path, monkeypatch):
    """With reuse N the frozen f16 pass (most of a step) is made for one batch every N steps, and no batch
    trains more than N steps."""
    from collections import Counter

    import vqcodec.train.hierarchy as training
    from vqcodec.hierarchy import FineConfig

    tokenizer_run(image_folder, tmp_path / "run", steps=2)
    trained = []
    fine_step = training.fine_step
    monkeypatch.setattr(training, "fine_step", lambda model, crops, *rest: trained.append(crops) or
                        fine_step(model, crops, *rest))
    cfg = training.HierarchyTrainConfig(data=(str(image_folder),), state=str(tmp_path / "state"),
                                        tokenizer=str(tmp_path / "run"), minutes=0.05, batch=2, crop=32,
                                        held_out_every=0, reuse=3, quiet=True)
    record = training.train_hierarchy(cfg, FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2))
    steps, uses = record["step"], Counter(map(id, trained))
    assert steps == len(trained) >= 9
    assert max(uses.values()) == 3
    assert steps // 3 <= len(uses) <= steps // 3 + 3  # the first 3 steps draw 3 batches, then one per 3 steps


def test_a_hierarchys_squared_error_weight_adds_to_its_loss_and_log(image_folder, tmp_path):
    """--mse-weight w adds w times the squared error to the fine side's loss (the rest unchanged) and logs it;
    without it the loss and the log are as before."""
    from vqcodec.families import read_tokenizer
    from vqcodec.hierarchy import FineConfig, Hierarchy
    from vqcodec.metrics import load_lpips
    from vqcodec.train.hierarchy import HierarchyTrainConfig, fine_step, frozen_pass, train_hierarchy
    from vqcodec.train.tokenizer import DeadCodeRestarter

    tokenizer_run(image_folder, tmp_path / "run", steps=2)
    fine = FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2)
    model = Hierarchy(read_tokenizer(tmp_path / "run")[0], fine).eval()
    crops = frozen_pass(model, torch.rand(2, 3, 32, 32) * 2 - 1)
    lpips_model, restarter = load_lpips(), DeadCodeRestarter(2, 8, 4)
    losses = {}
    for w in (0.0, 3.0):
        torch.manual_seed(0)
        losses[w] = fine_step(model, crops, False, lpips_model, restarter, w)
    (plain, plain_parts), (weighted, parts) = losses[0.0], losses[3.0]
    assert "mse" not in plain_parts and parts["mse"] > 0
    assert weighted.item() == pytest.approx(plain.item() + 3.0 * parts["mse"], rel=1e-5)
    cfg = HierarchyTrainConfig(data=(str(image_folder),), state=str(tmp_path / "state"), tokenizer=str(tmp_path / "run"),
                               minutes=0.05, batch=2, crop=32, held_out_every=0, mse_weight=3.0, quiet=True)
    record = train_hierarchy(cfg, fine)
    assert record["log"] and all(line["mse"] > 0 for line in record["log"])
    assert record["stretches"][-1]["args"]["mse_weight"] == "3.0"
    resumed = train_hierarchy(replace(cfg, mse_weight=None), fine)  # a resume keeps the stretch's loss
    assert resumed["stretches"][-1]["args"]["mse_weight"] == "3.0" and "mse" in resumed["log"][-1]
    plain = train_hierarchy(replace(cfg, mse_weight=0.0), fine)     # unless told otherwise
    assert plain["stretches"][-1]["args"]["mse_weight"] == "0.0" and "mse" not in plain["log"][-1]


def test_a_hierarchys_fine_side_moves_onto_another_tokenizer_of_its_layout(image_folder, tmp_path):
    """A rebase: the state's frozen tokenizer becomes the one given (a shipped model's, say), its fine side and
    history carry on, and a tokenizer of another layout is refused before anything is written."""
    from vqcodec.families import config_dict, read_tokenizer
    from vqcodec.hierarchy import FineConfig, read_hierarchy
    from vqcodec.tokenizer import Tokenizer
    from vqcodec.train.hierarchy import HierarchyTrainConfig, train_hierarchy
    from vqcodec.train.state import save_state

    tokenizer_run(image_folder, tmp_path / "a", steps=2)
    tokenizer_run(image_folder, tmp_path / "b", steps=4)
    fine = FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2)
    cfg = HierarchyTrainConfig(data=(str(image_folder),), state=str(tmp_path / "state"), tokenizer=str(tmp_path / "a"),
                               minutes=0.02, batch=2, crop=32, save_every=1, held_out_every=0, quiet=True)
    first = train_hierarchy(cfg, fine)
    before = read_hierarchy(tmp_path / "state")[0]
    tok_a, tok_b = read_tokenizer(tmp_path / "a")[0], read_tokenizer(tmp_path / "b")[0]
    assert not torch.equal(tok_a.decoder.body[0].weight, tok_b.decoder.body[0].weight)

    other = Tokenizer(TokenizerConfig(channels=(8, 16), unshuffle=2, code_dim=4, codebook_size=16, depth=3))
    save_state(tmp_path / "other", {"model": other}, {"step": 1, "model": config_dict(other.cfg)})
    with pytest.raises(ValueError, match="laid out"):
        train_hierarchy(replace(cfg, tokenizer=str(tmp_path / "other")), fine)
    assert read_hierarchy(tmp_path / "state")[1]["step"] == first["step"]

    moved = train_hierarchy(replace(cfg, tokenizer=str(tmp_path / "b")), fine)
    assert moved["step"] > first["step"] and moved["ancestor"]["state"] == str(tmp_path / "b")
    assert [s["args"]["tokenizer"] for s in moved["stretches"]] == [str(tmp_path / "a"), str(tmp_path / "b")]
    model = read_hierarchy(tmp_path / "state")[0]
    for k, v in tok_b.state_dict().items():  # the new tokenizer, frozen (the state keeps it in fp16)
        np.testing.assert_allclose(model.tok.state_dict()[k].numpy(), v.numpy(), atol=1e-3, rtol=1e-3, err_msg=k)
    # the fine side went on from where it was (a few warm-up steps away), not from a new start
    for k, v in before.fine.state_dict().items():
        np.testing.assert_allclose(model.fine.state_dict()[k].numpy(), v.numpy(), atol=1e-2, err_msg=k)
    assert not torch.equal(model.fine.read.weight, before.fine.read.weight)


def test_a_hierarchy_over_a_shipped_models_tokenizer_names_it_instead_of_carrying_it(image_folder, tmp_path,
                                                                                       monkeypatch):
    """The state holds the fine side only and reads the shipped tokenizer back, checked by its SHA-256: a
    changed or missing model is an error that says so, never another tokenizer."""
    from safetensors.torch import save_file
    from vqcodec import families
    from vqcodec.families import config_dict
    from vqcodec.hierarchy import FineConfig, read_hierarchy
    from vqcodec.tokenizer import Tokenizer
    from vqcodec.train.hierarchy import HierarchyTrainConfig, train_hierarchy

    monkeypatch.setattr(families, "WEIGHTS_DIR", tmp_path / "weights")
    shipped = tmp_path / "weights" / "tiny-v1"
    shipped.mkdir(parents=True)
    torch.manual_seed(1)
    tok = Tokenizer(TINY)
    save_file({k: v.half().contiguous() for k, v in tok.state_dict().items()}, str(shipped / "tokenizer.safetensors"))
    (shipped / "config.json").write_text(json.dumps({"tokenizer": config_dict(TINY)}))
    cfg = HierarchyTrainConfig(data=(str(image_folder),), state=str(tmp_path / "state"), tokenizer=str(shipped),
                               minutes=0.02, batch=2, crop=32, save_every=1, held_out_every=0, quiet=True)
    fine = FineConfig(dim=4, depth=2, codebook_size=8, width=8, coarse_levels=2)
    first = train_hierarchy(cfg, fine)
    assert first["frozen_tokenizer"]["model"] == "tiny-v1"
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["fine.safetensors", "state.json"]
    again = train_hierarchy(replace(cfg, tokenizer=""), fine)  # resumed: still named, still not carried
    assert again["frozen_tokenizer"] == first["frozen_tokenizer"] and again["step"] > first["step"]
    assert not (tmp_path / "state" / "model.safetensors").exists()
    model, _ = read_hierarchy(tmp_path / "state")
    for k, v in tok.state_dict().items():
        np.testing.assert_allclose(model.tok.state_dict()[k].numpy(), v.half().float().numpy(), err_msg=k)

    weights = load_file(str(shipped / "tokenizer.safetensors"))
    weights["quantizer.codebooks"] = weights["quantizer.codebooks"] + 1
    save_file(weights, str(shipped / "tokenizer.safetensors"))
    with pytest.raises(ValueError, match="tiny-v1's tokenizer with SHA-256"):
        read_hierarchy(tmp_path / "state")
    (shipped / "tokenizer.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="does not ship"):
        read_hierarchy(tmp_path / "state")


def test_a_fine_prior_trains_on_a_hierarchys_grids_and_lives_on_in_its_lasting_state(tmp_path):
    from vqcodec.train.fineprior import main as train_fine_prior
    from vqcodec.train.state import read_record

    args = tiny_hierarchy_run(tmp_path)
    train_fine_prior(args)
    first = read_record(tmp_path / "prior")
    assert first["step"] > 0 and first["prior"]["codebook_size"] == 8 and first["prior"]["coarse_levels"] == 2
    assert len(first["log"][-1]["heldout_bits"]["pictures"]) == 2  # bits per index of each fine depth
    assert first["hierarchies"] == [{"state": str(tmp_path / "hierarchy"), "step": 3}]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    train_fine_prior(args)
    again = read_record(tmp_path / "prior")
    assert again["step"] > first["step"] and again["hierarchies"] == first["hierarchies"]
    assert again["log"][:len(first["log"])] == first["log"]  # the log carries on (one line per save)
    assert again["log"][-1]["step"] == again["step"] > first["log"][-1]["step"]


def test_a_hierarchys_model_ships_from_its_lasting_states_and_codes_its_fine_levels(tmp_path):
    from vqcodec.prior import PriorConfig, PriorModel
    from vqcodec.train.export import export_hierarchy
    from vqcodec.train.fineprior import main as train_fine_prior
    from vqcodec.train.quantize import quantize_prior
    from vqcodec.train.state import read_record
    from vqcodec.zoo import export_model

    args = tiny_hierarchy_run(tmp_path)
    train_fine_prior(args)
    prior_cfg = PriorConfig(codebook_size=16, depth=2, window=4, n_layer=1, n_head=2, n_embd=16)
    coarse = tmp_path / "coarse"
    export_model(coarse, vqcodec.tokenizer.Tokenizer(TINY), prior_cfg,
                 quantize_prior(PriorModel(prior_cfg).eval(), torch.randint(0, 16, (8, 4, 4, 2))))
    data, cache = [tmp_path / "pictures"], tmp_path / "cache"
    export_hierarchy(tmp_path / "hierarchy", coarse, tmp_path / "prior", tmp_path / "model", 3, data, cache)
    m = vqcodec.load_model(tmp_path / "model")
    assert (m.levels, m.coarse_levels, m.default_quality) == (4, 2, 3)
    picture = np.asarray(Image.open(tmp_path / "pictures" / "coffee.png"))[:40, :48]
    for quality in (2, 4):
        decoded = vqcodec.decompress(vqcodec.compress(picture, quality, m), m)
        assert np.array_equal(np.asarray(decoded), np.asarray(vqcodec.reconstruct(picture, quality, m)))
    record = read_record(tmp_path / "prior")
    (tmp_path / "prior" / "state.json").write_text(json.dumps({**record, "hierarchies": [{"state": "x", "step": 9}]}))
    with pytest.raises(ValueError, match="trained on the grids of hierarchy steps"):
        export_hierarchy(tmp_path / "hierarchy", coarse, tmp_path / "prior", tmp_path / "other", 3, data, cache)
