"""A continuing run's lasting state: its weights in fp16 safetensors (one file per module) and
`state.json`, in one folder (eval/runs/NAME) small enough to commit and replaced in place, so that a
run outlives the machine it trained on.

It keeps no optimizer moments (they would triple its size): resuming from it is a warm restart, with
fresh Adam moments and a short learning-rate warm-up. An exact checkpoint (checkpoint.py) may sit beside
it in a scratch folder; the newer of the two is resumed.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..families import state_tensors
from ..output import write_atomically

STATE = "state.json"
LOG = "log.jsonl"
MAX_FILE_BYTES = 16 * 2 ** 20   # what one file may be to come back from a lent GPU machine
MAX_STATE_BYTES = 20 * 10 ** 6  # what a committed state may be in all


class StateTooLarge(ValueError):
    """The weights would not fit the state's size limits."""


def has_state(folder: Path) -> bool:
    return (Path(folder) / STATE).is_file()


def read_record(folder: Path) -> dict:
    return json.loads((Path(folder) / STATE).read_text())


def _half(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous().cpu()
            for k, v in module.state_dict().items()}


def state_bytes(modules: dict[str, torch.nn.Module]) -> dict[str, int]:
    """What each module's file will hold, in bytes of tensor data."""
    return {name: sum(v.numel() * v.element_size() for v in _half(m).values()) for name, m in modules.items()}


def resume_source(ckpt: Path, state: str) -> str:
    """Which of a run's checkpoints to resume: "exact" (ckpt.json/.safetensors in its scratch folder),
    "state" (a warm restart from the lasting state) or "" (a new run). The exact checkpoint wins unless
    the lasting state has moved past it."""
    exact = Path(ckpt).with_suffix(".json").exists()
    kept = bool(state) and has_state(Path(state))
    if exact and (not kept or json.loads(Path(ckpt).with_suffix(".json").read_text())["step"]
                  >= read_record(Path(state))["step"]):
        return "exact"
    return "state" if kept else ""


def _shards(tensors: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The tensors in order, in as few groups of at most MAX_FILE_BYTES as filling them in turn gives."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    for key, value in tensors.items():
        size = value.numel() * value.element_size()
        if size > MAX_FILE_BYTES:
            raise StateTooLarge(f"a run's state may hold files of at most {MAX_FILE_BYTES} bytes; {key} alone "
                                f"needs {size}")
        if shards[-1] and sum(v.numel() * v.element_size() for v in shards[-1].values()) + size > MAX_FILE_BYTES:
            shards.append({})
        shards[-1][key] = value
    return shards


def save_state(folder: Path, modules: dict[str, torch.nn.Module], record: dict) -> None:
    """Write each module's weights in fp16 (integer buffers as they are) as NAME.safetensors, split into
    NAME-2.safetensors, ... where one file would pass MAX_FILE_BYTES; then the record, which lists the
    files. Each file is written atomically, the record last: a state.json never describes weights newer
    than the files beside it. Files it does not list are removed."""
    sizes = state_bytes(modules)
    if sum(sizes.values()) > MAX_STATE_BYTES:
        raise StateTooLarge(f"a run's state may hold at most {MAX_STATE_BYTES} bytes in all; these modules "
                            f"need {sizes}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, module in modules.items():
        shards = _shards(_half(module))
        files[name] = [f"{name}.safetensors"] + [f"{name}-{k}.safetensors" for k in range(2, len(shards) + 1)]
        for file, tensors in zip(files[name], shards):
            write_atomically(folder / file, lambda tmp: save_file(tensors, tmp))
    record = {**record, "modules": sorted(modules), "files": files}
    text = json.dumps(record, indent=1)
    write_atomically(folder / STATE, lambda tmp: Path(tmp).write_text(text + "\n"))
    kept = {file for names in files.values() for file in names}
    for stale in folder.glob("*.safetensors"):
        if stale.name not in kept:
            stale.unlink()


def load_state(folder: Path, modules: dict[str, torch.nn.Module]) -> dict:
    """Load the state's weights into those of the modules it has (each in the module's own dtype);
    returns the record. A module the state lacks (a discriminator not yet on) keeps its weights."""
    folder = Path(folder)
    record = read_record(folder)
    for name in record["modules"]:
        if name in modules:
            own = modules[name].state_dict()
            tensors = state_tensors(folder, record, name)
            modules[name].load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in tensors.items()})
    return record
