"""Turn a training run's checkpoints into a model folder: the tokenizer in fp16, the prior quantized
to its integer-exact form (calibrated on the run's cached training token grids)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..prior import PriorConfig, PriorModel
from ..tokenizer import Tokenizer, TokenizerConfig
from ..zoo import export_model
from .checkpoint import load_checkpoint
from .prior import token_cache_name
from .quantize import calibration_tiles, quantize_prior

CALIBRATION_TILES = 256


def export_run(run: Path, dst: Path, default_quality: int) -> bytes:
    tok_meta = json.loads((run / "tokenizer_ckpt.json").read_text())
    prior_meta = json.loads((run / "prior_ckpt.json").read_text())
    tokenizer = Tokenizer(TokenizerConfig.from_dict(tok_meta["model"]))
    prior = PriorModel(PriorConfig.from_dict(prior_meta["model"]))
    load_checkpoint(run / "tokenizer_ckpt", {"model": tokenizer}, {})
    load_checkpoint(run / "prior_ckpt", {"model": prior}, {})
    if not 1 <= default_quality <= tokenizer.cfg.depth:
        raise ValueError(f"default quality must be from 1 to {tokenizer.cfg.depth}")
    expected = token_cache_name(tokenizer)
    if prior_meta["tokens"] != expected:
        raise ValueError(f"the prior in {run} was trained on the token grids of another encoder or codebooks "
                         f"({prior_meta['tokens']}, this tokenizer makes {expected}): "
                         "train the prior on this tokenizer's grids")
    tokens = run / prior_meta["tokens"]
    if not tokens.is_file():
        raise FileNotFoundError(f"{tokens} (the prior's training token grids, for calibration) is missing")
    with np.load(tokens, allow_pickle=False) as z:
        grids = [z[k] for k in z.files]
    tensors = quantize_prior(prior, calibration_tiles(grids, prior.cfg.window, CALIBRATION_TILES))
    return export_model(dst, tokenizer, prior.cfg, tensors,
                        {"default_quality": default_quality, "tokenizer_steps": tok_meta["step"],
                         "prior_steps": prior_meta["step"], "calibration_tiles": CALIBRATION_TILES})
