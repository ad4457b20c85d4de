"""Model families: one reader for every folder that holds a tokenizer; configs name their family, and the
configs written before families existed keep their bytes (and so every model its id)."""
import json
import shutil
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

import vqcodec
from vqcodec.families import (FAMILIES, UnknownFamily, build_tokenizer, config_dict, read_tokenizer,
                              read_tokenizer_record)
from vqcodec.tokenizer import Tokenizer, TokenizerConfig
from vqcodec.zoo import CONFIG, DEFAULT_MODEL, MODELS, WEIGHTS_DIR

TINY = TokenizerConfig(channels=(8, 16), unshuffle=2, code_dim=4, codebook_size=16, depth=2)


def test_every_shipped_model_folder_is_found_newest_first():
    folders = sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / CONFIG).is_file())
    assert sorted(MODELS) == folders
    assert next(iter(MODELS)) == DEFAULT_MODEL


def test_a_shipped_config_without_a_family_is_the_default_family_and_keeps_its_bytes():
    config = json.loads((MODELS[DEFAULT_MODEL] / CONFIG).read_text())
    assert "family" not in config["tokenizer"]
    tokenizer = build_tokenizer(config["tokenizer"])
    assert isinstance(tokenizer, FAMILIES["vqgan"][0])
    assert json.loads(json.dumps(config_dict(tokenizer.cfg))) == config["tokenizer"]


def write_model_folder(folder, tokenizer, config=None):
    folder.mkdir()
    save_file({k: v.half() for k, v in tokenizer.state_dict().items()}, str(folder / "tokenizer.safetensors"))
    (folder / "config.json").write_text(json.dumps({"tokenizer": config or config_dict(tokenizer.cfg)}))


def test_model_folders_run_checkpoints_and_lasting_states_read_the_same(tmp_path):
    from vqcodec.train.checkpoint import save_checkpoint
    from vqcodec.train.state import save_state

    torch.manual_seed(0)
    tokenizer = Tokenizer(TINY)
    write_model_folder(tmp_path / "model", tokenizer)
    save_checkpoint(tmp_path / "run" / "tokenizer_ckpt", {"model": tokenizer}, {},
                    {"step": 7, "model": config_dict(TINY)})
    save_state(tmp_path / "state", {"model": tokenizer}, {"step": 9, "model": config_dict(TINY)})
    expected = {k: v.half().float() for k, v in tokenizer.state_dict().items()}
    for folder, step in (("model", None), ("run", 7), ("state", 9)):
        read, record = read_tokenizer(tmp_path / folder)
        assert read.cfg == TINY and record.get("step") == step
        assert read_tokenizer_record(tmp_path / folder) == record
        for k, v in read.state_dict().items():
            torch.testing.assert_close(v.half().float(), expected[k], msg=f"{folder}: {k}")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        read_tokenizer(tmp_path)


def test_a_model_of_a_family_this_version_lacks_is_refused_by_name(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(MODELS[DEFAULT_MODEL], folder)
    config = json.loads((folder / CONFIG).read_text())
    config["tokenizer"]["family"] = "from-the-future"
    (folder / CONFIG).write_text(json.dumps(config))
    with pytest.raises(UnknownFamily, match="from-the-future.*newer vqcodec"):
        read_tokenizer(folder)
    with pytest.raises(vqcodec.ModelNotFound, match="from-the-future"):
        vqcodec.load_model(folder)


def test_a_deeper_decoder_grown_from_a_model_starts_with_its_output(tmp_path):
    from vqcodec.train.tokenizer import warm_start

    torch.manual_seed(0)
    source = Tokenizer(TINY)
    write_model_folder(tmp_path / "model", source)
    source = read_tokenizer(tmp_path / "model")[0].eval()  # fp16, as the folder holds it
    grown = Tokenizer(replace(TINY, decoder_blocks=(3, 2)))
    assert warm_start(grown, tmp_path / "model") == TINY.depth
    assert sum(p.numel() for p in grown.decoder.parameters()) > sum(p.numel() for p in source.decoder.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    indices = source.encode(x, TINY.depth)
    torch.testing.assert_close(grown.eval().encode(x, TINY.depth), indices)
    torch.testing.assert_close(grown.decode(indices), source.decode(indices))
    with pytest.raises(ValueError, match="beyond adding"):  # a decoder cannot shrink
        warm_start(Tokenizer(TINY), _grown_folder(tmp_path, grown))


def _grown_folder(tmp_path, tokenizer):
    write_model_folder(tmp_path / "grown", tokenizer)
    return tmp_path / "grown"


def test_the_decoders_depth_is_kept_in_configs_only_where_it_is_not_the_default():
    assert "decoder_blocks" not in TINY.to_dict()
    assert TokenizerConfig.from_dict(replace(TINY, decoder_blocks=(1, 2)).to_dict()).decoder_blocks == (1, 2)
