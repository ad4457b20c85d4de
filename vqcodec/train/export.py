"""Turn a training run's checkpoints into a model folder: the tokenizer in fp16, the prior quantized
to its integer-exact form (calibrated on the run's cached training token grids); a hierarchy's lasting
state with its fine grid's prior into a hierarchy's model folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ..families import config_dict, model_file, read_tokenizer
from ..fineprior import FinePrior, FinePriorConfig
from ..hierarchy import read_hierarchy
from ..prior import PriorConfig, PriorModel
from ..tokenizer import DECODER_KEYS, Tokenizer
from ..zoo import CONFIG, PRIOR_WEIGHTS, TOKENIZER_WEIGHTS, export_model, model_identity
from .checkpoint import load_checkpoint
from .fineprior import grid_cache, sample
from .prior import token_cache_name
from .quantize import calibration_tiles, quantize_fine_prior, quantize_prior
from .state import load_state, read_record

CALIBRATION_TILES = 256


def _as_json(cfg: dict) -> dict:
    """A config as config.json holds it (tuples read back as lists)."""
    return json.loads(json.dumps(cfg))


def _grids_of(tokenizer_config: dict) -> dict:
    """What of a tokenizer's config decides its token grids: all but the decoder's layout."""
    return {k: v for k, v in tokenizer_config.items() if k not in DECODER_KEYS}


def files_it_reads(earlier: Path, tokenizer: Tokenizer, prior_cfg: PriorConfig,
                   prior_tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """The "reads_files_of" entry of a model that keeps the codebooks and integer prior of the model
    folder `earlier` (and so decodes its files and those it reads exactly); raises otherwise."""
    cfg = json.loads((earlier / CONFIG).read_text())
    old_prior = load_file(str(model_file(earlier, PRIOR_WEIGHTS)))
    old_codebooks = load_file(str(model_file(earlier, TOKENIZER_WEIGHTS)))["quantizer.codebooks"]
    same = (_grids_of(cfg["tokenizer"]) == _grids_of(_as_json(config_dict(tokenizer.cfg)))
            and cfg["prior"] == _as_json(prior_cfg.to_dict())
            and old_prior.keys() == prior_tensors.keys()
            and all(torch.equal(old_prior[k], prior_tensors[k]) for k in old_prior)
            and torch.equal(old_codebooks, tokenizer.quantizer.codebooks.detach().half()))
    if not same:
        raise ValueError(f"this model cannot read the files of {earlier}: its configuration, codebooks or "
                         "integer prior differ (only the decoder may change)")
    return {model_identity(earlier)[:4].hex(): earlier.name, **cfg.get("reads_files_of", {})}


def export_run(run: Path, dst: Path, default_quality: int, reads_files_of: Path | None = None,
               tokenizer_from: Path | None = None) -> bytes:
    """Write the model of `run` (its prior, and its tokenizer unless tokenizer_from names the folder that
    holds it: a run folder or a lasting state) into `dst`. reads_files_of: an earlier model folder whose
    files the new model must decode (the run only retrained the decoder)."""
    prior_meta = json.loads((run / "prior_ckpt.json").read_text())
    tokenizer, tok_meta = read_tokenizer(tokenizer_from or run)
    prior = PriorModel(PriorConfig.from_dict(prior_meta["model"]))
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
    extra = {"default_quality": default_quality, "tokenizer_steps": tok_meta["step"],
             "prior_steps": prior_meta["step"], "calibration_tiles": CALIBRATION_TILES}
    if reads_files_of is not None:
        extra["reads_files_of"] = files_it_reads(Path(reads_files_of), tokenizer, prior.cfg, tensors)
    return export_model(dst, tokenizer, prior.cfg, tensors, extra)


def export_decoder(earlier: Path, tokenizer_from: Path, dst: Path) -> bytes:
    """Write the model folder `earlier` into `dst` with the decoder of tokenizer_from (a run folder or a
    lasting state that trained earlier's decoder only). The encoder, codebooks and integer prior are kept
    as they are, so the new model makes earlier's token grids, its prior still fits them, and it decodes
    earlier's files; raises where the encoder or codebooks moved."""
    cfg = json.loads((earlier / CONFIG).read_text())
    tokenizer, tok_meta = read_tokenizer(tokenizer_from)
    if _grids_of(cfg["tokenizer"]) != _grids_of(_as_json(config_dict(tokenizer.cfg))):
        raise ValueError(f"the tokenizer of {tokenizer_from} is not laid out as {earlier}'s")
    shipped, trained = load_file(str(model_file(earlier, TOKENIZER_WEIGHTS))), tokenizer.state_dict()
    moved = [k for k in shipped if not k.startswith("decoder.") and not torch.equal(shipped[k], trained[k].half())]
    if moved:
        raise ValueError(f"{tokenizer_from} is not a decoder-only run of {earlier}: {len(moved)} encoder or "
                         f"codebook tensors differ (the first: {moved[0]}), so its token grids are not the prior's")
    prior_cfg, prior_tensors = PriorConfig.from_dict(cfg["prior"]), load_file(str(model_file(earlier, PRIOR_WEIGHTS)))
    extra = {k: v for k, v in cfg.items() if k not in ("tokenizer", "prior")}
    extra.update(tokenizer_steps=tok_meta["step"],
                 reads_files_of=files_it_reads(earlier, tokenizer, prior_cfg, prior_tensors))
    return export_model(dst, tokenizer, prior_cfg, prior_tensors, extra)


def export_hierarchy(hierarchy: Path, coarse_model: Path, fine_prior: Path, dst: Path, default_quality: int,
                     data: list[Path], cache: Path) -> bytes:
    """Write a hierarchy's model folder: the f16 tokenizer and fine side of the lasting state `hierarchy`,
    the integer prior of the model folder `coarse_model` as it is (the coarse grids' prior), and the fine
    grid's prior of the lasting state `fine_prior`, quantized on the hierarchy's grids of the training
    pictures in `data` (train/fineprior.py's grid cache in `cache`). The fine prior must have trained on
    this hierarchy's grids."""
    model, record = read_hierarchy(hierarchy)
    prior_record = read_record(fine_prior)
    trained_on = [h["step"] for h in prior_record.get("hierarchies", [])]
    if record["step"] not in trained_on:
        raise ValueError(f"the fine prior in {fine_prior} trained on the grids of hierarchy steps {trained_on}, "
                         f"not on those of {hierarchy} (step {record['step']})")
    cfg = json.loads((coarse_model / CONFIG).read_text())
    if cfg["tokenizer"] != _as_json(config_dict(model.tok.cfg)):
        raise ValueError(f"the prior of {coarse_model} is for another tokenizer layout than {hierarchy}'s")
    levels = model.fine.cfg.coarse_levels + model.fine.cfg.depth
    if not 1 <= default_quality <= levels:
        raise ValueError(f"default quality must be from 1 to {levels}")
    prior = FinePrior(FinePriorConfig.from_dict(prior_record["prior"]))
    load_state(fine_prior, {"prior": prior})
    coarse, fine = sample(grid_cache(model, data, cache), CALIBRATION_TILES // 4, 8, np.random.default_rng(0))
    extra = {"default_quality": default_quality, "tokenizer_steps": record.get("ancestor", {}).get("step"),
             "fine_steps": record["step"], "coarse_prior_from": coarse_model.name,
             "fine_prior_steps": prior_record["step"],
             "calibration_tiles": CALIBRATION_TILES // 4}
    return export_model(dst, model.tok, PriorConfig.from_dict(cfg["prior"]), load_file(str(model_file(coarse_model, PRIOR_WEIGHTS))),
                        extra, model.fine, (prior.cfg, quantize_fine_prior(prior.eval(), coarse, fine)))
