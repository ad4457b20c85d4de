"""Resumable training checkpoints as safetensors + JSON: model, optimizers, step, RNG, config.

Never pickle: optimizer state is flattened into named tensors plus JSON-serialisable fields.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..output import write_atomically


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            key = f"{prefix}.{idx}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: Path, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], meta: dict) -> None:
    """Write path.safetensors and path.json atomically (tmp + rename), JSON last."""
    tensors, opt_meta = {}, {}
    for name, m in modules.items():
        tensors.update({f"{name}.{k}": v.detach().contiguous() for k, v in m.state_dict().items()})
    for name, opt in optimizers.items():
        t, m = _flatten_optimizer(f"opt_{name}", opt)
        tensors.update(t)
        opt_meta[name] = m
    tensors["rng.torch"] = torch.get_rng_state()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path.with_suffix(".safetensors"), lambda tmp: save_file(tensors, tmp))
    text = json.dumps({**meta, "optimizers": opt_meta}, indent=1)
    write_atomically(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer], optional: tuple[str, ...] = ()) -> dict:
    """Restore what save_checkpoint wrote; returns its meta dict. Modules named in `optional` (caches
    that older checkpoints lack) keep their fresh state when the file has none."""
    path = Path(path)
    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    for name, m in modules.items():
        state = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if state or name not in optional:
            m.load_state_dict(state)
    for name, opt in optimizers.items():
        _restore_optimizer(f"opt_{name}", opt, tensors, meta["optimizers"][name])
    torch.set_rng_state(tensors["rng.torch"])
    return meta
