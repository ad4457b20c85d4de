"""Models: found by name or folder, identified by their files, and never confused with one another."""
import json
import shutil

import pytest

import vqcodec
from vqcodec.defaults import shipped_levels
from vqcodec import families
from vqcodec.families import model_file
from vqcodec.zoo import (CONFIG, DEFAULT_MODEL, FILES, MODELS, PRIOR_WEIGHTS, find_model_by_id, load_model,
                         model_files, model_identity, share_files)


@pytest.fixture
def shipped_copy(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(MODELS[DEFAULT_MODEL], folder)
    return folder


def test_unknown_model_name_is_a_clear_error(tmp_path):
    with pytest.raises(vqcodec.ModelNotFound, match="no model"):
        vqcodec.load_model("no-such-model")
    with pytest.raises(vqcodec.ModelNotFound, match="no model"):
        vqcodec.load_model(tmp_path)  # a folder without the model's files


def test_a_shipped_model_with_a_missing_file_says_the_installation_is_incomplete(shipped_copy, monkeypatch):
    (shipped_copy / CONFIG).unlink()
    monkeypatch.setitem(MODELS, "broken", shipped_copy)
    with pytest.raises(vqcodec.ModelNotFound, match="lacks config.json.*reinstall"):
        vqcodec.load_model("broken")


@pytest.mark.parametrize("damage", ["config not json", "config not an object", "config of another shape",
                                    "weights cut short"])
def test_a_damaged_model_folder_is_a_clear_one_line_error(shipped_copy, damage):
    cfg = json.loads((shipped_copy / CONFIG).read_text())
    if damage == "config not json":
        (shipped_copy / CONFIG).write_text("{not json")
    elif damage == "config not an object":
        (shipped_copy / CONFIG).write_text("[1]")
    elif damage == "config of another shape":
        cfg["tokenizer"]["code_dim"] //= 2
        (shipped_copy / CONFIG).write_text(json.dumps(cfg))
    else:
        (shipped_copy / PRIOR_WEIGHTS).write_bytes(model_file(shipped_copy, PRIOR_WEIGHTS).read_bytes()[:1000])
    with pytest.raises(vqcodec.ModelNotFound, match=r"'copy' .* cannot be read .*export it again") as e:
        vqcodec.load_model(shipped_copy)
    assert "\n" not in str(e.value) and len(str(e.value)) < 400


def test_a_model_is_its_files(model, shipped_copy):
    assert vqcodec.load_model(shipped_copy).model_id == model.model_id
    for name in FILES:
        changed = shipped_copy.parent / f"changed-{name}"
        shutil.copytree(shipped_copy, changed)
        with open(changed / name, "ab") as f:
            f.write(b" ")
        assert model_identity(changed) != model.model_id, name


def test_a_model_that_shares_files_with_a_shipped_one_is_the_same_model(model, small_photo, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    whole = weights / "whole"  # the default model with every file of its own
    whole.mkdir(parents=True)
    for name in model_files(MODELS[DEFAULT_MODEL]):
        shutil.copyfile(model_file(MODELS[DEFAULT_MODEL], name), whole / name)
    monkeypatch.setattr(families, "WEIGHTS_DIR", weights)
    monkeypatch.setitem(MODELS, "whole", whole)
    sharing = tmp_path / "sharing"
    shutil.copytree(whole, sharing)

    assert share_files(sharing, "whole") == [name for name in sorted(model_files(whole)) if name != CONFIG]
    assert sorted(p.name for p in sharing.iterdir()) == sorted([CONFIG, families.SHARED_FILES])
    assert model_identity(sharing) == model.identity
    assert vqcodec.compress(small_photo, model=load_model(sharing)) == vqcodec.compress(small_photo, model=model)

    with open(whole / PRIOR_WEIGHTS, "ab") as f:  # the shipped copy changes under it
        f.write(b" ")
    with pytest.raises(vqcodec.ModelNotFound, match="shares prior_int8.safetensors with model whole, whose copy has changed"):
        load_model(sharing)
    shutil.rmtree(whole)
    with pytest.raises(vqcodec.ModelNotFound, match="shares .* with whole, which this vqcodec does not ship"):
        load_model(sharing)


def test_a_model_folder_rewritten_in_place_is_loaded_anew(shipped_copy):
    first = vqcodec.load_model(shipped_copy)
    cfg = json.loads((shipped_copy / CONFIG).read_text())
    cfg["default_quality"] = 3 - cfg["default_quality"] % 2
    (shipped_copy / CONFIG).write_text(json.dumps(cfg))
    second = vqcodec.load_model(shipped_copy)
    assert second.model_id != first.model_id
    assert second.default_quality == cfg["default_quality"]


def test_a_files_model_id_finds_the_shipped_model_that_decodes_it(model):
    assert find_model_by_id(model.model_id[:4]) == DEFAULT_MODEL
    for older in json.loads((MODELS[DEFAULT_MODEL] / CONFIG).read_text()).get("reads_files_of", {}):
        assert find_model_by_id(bytes.fromhex(older)) == DEFAULT_MODEL
    assert find_model_by_id(b"\0\0\0\0") is None


def test_a_device_beside_a_loaded_model_is_refused_not_ignored(model, small_photo):
    import torch

    other = "cuda" if model.device.type == "cpu" else "cpu"
    with pytest.raises(ValueError, match=f"not on {other}.*move it"):
        vqcodec.compress(small_photo, model=model, device=other)
    with pytest.raises(ValueError, match="move it"):
        vqcodec.sample(1, size=(16, 16), model=model, device=other)
    assert vqcodec.compress(small_photo, model=model, device=model.device.type) == vqcodec.compress(small_photo,
                                                                                                    model=model)
    assert vqcodec.zoo.resolve_model(model, torch.device(model.device.type)) is model


@pytest.mark.parametrize("name", list(MODELS))
def test_the_levels_the_help_names_are_the_models_levels(name):
    """The command line names a model's levels from its config alone (no torch): they must be the ones the
    loaded model accepts, a hierarchy's fine levels included."""
    default, top = shipped_levels(name)
    model = load_model(name)
    assert (default, top) == (model.default_quality, model.levels)
    model.check_quality(top)
    with pytest.raises(ValueError):
        model.check_quality(top + 1)
