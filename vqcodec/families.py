"""Model families, and one reader for every folder that holds a tokenizer.

A family is a tokenizer class and its config class. A tokenizer config names its family under "family";
a config without the key is DEFAULT_FAMILY's, so every model written before families had names keeps its
bytes and its id. What the codec asks of a family's tokenizer: `cfg.depth`, `cfg.downsample` (pixels per
token along a side), `cfg.codebook_size`, `cfg.to_dict()`, `latent`, `quantize_latent`, `encode`,
`decode` and `quantizer.codebooks` (the encoder's code search).

Adding a family: one module with its tokenizer and config classes, and one line in FAMILIES.

A tokenizer lives in three kinds of folder, all read by `read_tokenizer`: a model folder (config.json +
tokenizer.safetensors, what ships), a training run's exact checkpoint (tokenizer_ckpt.json +
.safetensors, its modules' weights under "model."), and a run's lasting state (state.json +
model*.safetensors, eval/runs/NAME). A state whose tokenizer is frozen and a shipped model's names that
model instead ("frozen_tokenizer": its name and the SHA-256 of its tokenizer file), so the state stays small.
A model folder, too, may leave out files that a shipped model's folder holds byte for byte: its
shared_files.json names, for each, that model and the file's SHA-256 (`model_file` finds them).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from .tokenizer import Tokenizer, TokenizerConfig

FAMILIES: dict[str, tuple[type[torch.nn.Module], type]] = {
    "vqgan": (Tokenizer, TokenizerConfig),  # tokenizer.py: f16 VQ-GAN, residual codebooks
}
DEFAULT_FAMILY = "vqgan"

WEIGHTS_DIR = Path(__file__).parent / "weights"  # the shipped models' folders
MODEL_CONFIG, MODEL_TOKENIZER = "config.json", "tokenizer.safetensors"
SHARED_FILES = "shared_files.json"  # a model folder's files that a shipped model's folder holds for it
RUN_CHECKPOINT = "tokenizer_ckpt"
STATE_RECORD = "state.json"


class UnknownFamily(ValueError):
    """A config names a family this version does not have."""


def family_of(config: dict) -> str:
    family = config.get("family", DEFAULT_FAMILY)
    if family not in FAMILIES:
        raise UnknownFamily(f"model family {family!r} is not one this vqcodec knows ({', '.join(FAMILIES)}): "
                            "a newer vqcodec made it")
    return family


def tokenizer_config(config: dict):
    """A tokenizer config as a folder keeps it -> its family's config object."""
    return FAMILIES[family_of(config)][1].from_dict({k: v for k, v in config.items() if k != "family"})


def build_tokenizer(config: dict) -> torch.nn.Module:
    """A fresh tokenizer of the family and layout a config dict describes."""
    return FAMILIES[family_of(config)][0](tokenizer_config(config))


def config_dict(cfg) -> dict:
    """A tokenizer config object -> the dict folders keep, naming its family unless it is the default."""
    family = next(name for name, (_, config_class) in FAMILIES.items() if isinstance(cfg, config_class))
    return cfg.to_dict() if family == DEFAULT_FAMILY else {"family": family, **cfg.to_dict()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shared_files(folder: Path) -> dict[str, dict]:
    """The files a model folder shares with shipped models: file name -> {"model": name, "sha256": hex}."""
    path = Path(folder) / SHARED_FILES
    return json.loads(path.read_text()) if path.is_file() else {}


def model_file(folder: Path, name: str) -> Path:
    """Where a model folder's file `name` lies: in the folder, or in the folder of the shipped model it
    shares that file with (whose copy the model's identity checks against the recorded SHA-256)."""
    folder = Path(folder)
    shared = shared_files(folder).get(name)
    if shared is None or (folder / name).is_file():
        return folder / name
    path = WEIGHTS_DIR / shared["model"] / name
    if not path.is_file():
        raise FileNotFoundError(f"{folder} shares {name} with model {shared['model']}, which this vqcodec does "
                                "not ship with that file: reinstall vqcodec")
    return path


def shipped_tokenizer(folder: str | Path) -> dict | None:
    """How a state names the tokenizer of `folder` when that is a shipped model's folder (its name and the
    SHA-256 of its tokenizer file); None for any other folder."""
    folder = Path(folder).resolve()
    if folder.parent != WEIGHTS_DIR.resolve() or not (folder / MODEL_CONFIG).is_file():
        return None
    return {"model": folder.name, "sha256": _sha256(model_file(folder, MODEL_TOKENIZER))}


def _shipped_tokenizer_file(state: Path, named: dict) -> Path:
    """The tokenizer file of the shipped model a state names, checked against the state's SHA-256."""
    path = model_file(WEIGHTS_DIR / named["model"], MODEL_TOKENIZER)
    if not path.is_file():
        raise FileNotFoundError(f"{state} trains over the tokenizer of model {named['model']}, which this "
                                "vqcodec does not ship: use the vqcodec the state was trained with")
    if _sha256(path) != named["sha256"]:
        raise ValueError(f"{state} trains over model {named['model']}'s tokenizer with SHA-256 "
                         f"{named['sha256'][:16]}…, but this vqcodec ships one with {_sha256(path)[:16]}…")
    return path


def _sources(folder: Path) -> tuple[dict, dict, Path, str]:
    """(tokenizer config, the folder's record, its weights file (a lasting state: the state's folder, whose
    record lists the files), prefix of the tokenizer's keys in the weights)."""
    if (folder / MODEL_CONFIG).is_file():
        record = json.loads((folder / MODEL_CONFIG).read_text())
        return record["tokenizer"], record, model_file(folder, MODEL_TOKENIZER), ""
    if (folder / f"{RUN_CHECKPOINT}.json").is_file():
        record = json.loads((folder / f"{RUN_CHECKPOINT}.json").read_text())
        return record["model"], record, folder / f"{RUN_CHECKPOINT}.safetensors", "model."
    if (folder / STATE_RECORD).is_file():
        record = json.loads((folder / STATE_RECORD).read_text())
        if "frozen_tokenizer" in record:
            return record["model"], record, _shipped_tokenizer_file(folder, record["frozen_tokenizer"]), ""
        return record["model"], record, folder, ""
    raise FileNotFoundError(f"{folder} holds no tokenizer: neither a model folder's {MODEL_CONFIG}, a run's "
                            f"{RUN_CHECKPOINT}.json nor a lasting state's {STATE_RECORD}")


def state_tensors(folder: Path, record: dict, module: str) -> dict[str, torch.Tensor]:
    """One module's tensors of a lasting state: the files its record lists for it (a module may be split
    so that each file fits what a lent GPU machine returns), or NAME.safetensors in states written before
    records listed them."""
    files = record.get("files", {}).get(module, [f"{module}.safetensors"])
    return {k: v for file in files for k, v in load_file(str(Path(folder) / file)).items()}


def read_tokenizer_config(folder: str | Path):
    """The config object of the tokenizer a folder holds, without reading its weights."""
    return tokenizer_config(_sources(Path(folder))[0])


def read_tokenizer_record(folder: str | Path) -> dict:
    """The record of the folder a tokenizer lives in (as read_tokenizer returns it), without its weights."""
    return _sources(Path(folder))[1]


def read_tokenizer(folder: str | Path) -> tuple[torch.nn.Module, dict]:
    """The tokenizer a folder holds, in float32 and training mode, and the folder's record (config.json,
    the checkpoint's or the state's JSON: its step, training config, ...). A run folder's exact checkpoint
    is read before a lasting state in the same folder."""
    config, record, weights, prefix = _sources(Path(folder))
    tokenizer = build_tokenizer(config)
    tensors = state_tensors(weights, record, "model") if weights.is_dir() else load_file(str(weights))
    tokenizer.load_state_dict({k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)})
    return tokenizer, record
