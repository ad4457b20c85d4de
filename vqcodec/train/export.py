"""Turn a training run's checkpoints into a model folder (fp16 safetensors + config.json)."""
from __future__ import annotations

import json
from pathlib import Path

from ..prior import PriorConfig, PriorModel
from ..tokenizer import Tokenizer, TokenizerConfig
from ..zoo import export_model
from .checkpoint import load_checkpoint


def export_run(run: Path, dst: Path, default_quality: int) -> bytes:
    tok_meta = json.loads((run / "tokenizer_ckpt.json").read_text())
    prior_meta = json.loads((run / "prior_ckpt.json").read_text())
    tokenizer = Tokenizer(TokenizerConfig.from_dict(tok_meta["model"]))
    prior = PriorModel(PriorConfig.from_dict(prior_meta["model"]))
    load_checkpoint(run / "tokenizer_ckpt", {"model": tokenizer}, {})
    load_checkpoint(run / "prior_ckpt", {"model": prior}, {})
    if not 1 <= default_quality <= tokenizer.cfg.depth:
        raise ValueError(f"default quality must be from 1 to {tokenizer.cfg.depth}")
    return export_model(dst, tokenizer, prior, {"default_quality": default_quality,
                                               "tokenizer_steps": tok_meta["step"], "prior_steps": prior_meta["step"]})
