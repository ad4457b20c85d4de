"""Train the transformer prior on token grids of a folder of images (cached per tokenizer)."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..families import read_tokenizer
from ..prior import PriorConfig, PriorModel
from ..tokenizer import Tokenizer, to_unit_range
from . import state as lasting
from .checkpoint import load_checkpoint, save_checkpoint
from .loop import RunClock, checkpoint_due, cosine, log_line, set_lr, warmup
from ..images import image_files, to_rgb


@dataclass
class PriorTrainConfig:
    data: str
    out: str                  # run folder: prior_ckpt.*, the token cache and the log are written there
    steps: int = 6000
    batch: int = 16
    lr: float = 6e-4
    warmup: int = 200
    weight_decay: float = 0.05
    edge_tiles: float = 0.25  # share of batches with smaller tiles, as at image borders
    holdout: float = 0.05     # share of images kept out for the held-out NLL
    eval_every: int = 250
    ckpt_every: int = 250
    minutes: float = 0.0         # end (with a checkpoint) once the run's total wall time passes this
    stop_after: int = 0          # end this run (with a checkpoint) after this many steps; 0 = no limit
    seed: int = 0
    tokenizer: str = ""          # the tokenizer's folder (a run folder or a lasting state); "": out
    precision: str = "fp32"      # "bf16": the training steps under bf16 autocast (GPUs, CPUs with AMX)
    state: str = ""              # the run's lasting state (state.py: fp16 weights + state.json), written
                                 # with every checkpoint; resumed (a warm restart) when newer than out's
    device: str = "cpu"          # where the prior trains and the tokenizer makes the grids ("cuda": a GPU)
    init: str = ""               # a prior's lasting state whose weights start a new run (nothing to resume):
                                 # a prior of nearby grids learns new ones in far fewer steps than from scratch


@torch.no_grad()
def token_cache_name(tokenizer: Tokenizer) -> str:
    """The cache file of a tokenizer's grids, named by a digest of what decides them: the encoder and
    the codebooks (the decoder may change without changing a single index)."""
    digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in
                                     (*tokenizer.encoder.parameters(), tokenizer.quantizer.codebooks))).hexdigest()
    return f"tokens_{digest[:12]}.npz"


def token_cache(tokenizer: Tokenizer, data: Path, cache: Path) -> list[np.ndarray]:
    """Full-depth index grids (depth, h, w) of every image and its mirror image, computed once, on the
    tokenizer's device."""
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            return [z[k] for k in sorted(z.files, key=int)]
    f, device = tokenizer.cfg.downsample, tokenizer.quantizer.codebooks.device
    grids = []
    for path in tqdm(image_files(data), desc="tokenizing"):
        a = to_rgb(path, colour_manage=False)
        a = a[: a.shape[0] // f * f, : a.shape[1] // f * f]
        if a.size == 0:
            continue
        for view in (a, a[:, ::-1]):
            x = to_unit_range(torch.from_numpy(np.array(view)).permute(2, 0, 1)[None]).to(device)
            grids.append(tokenizer.encode(x, tokenizer.cfg.depth)[0].cpu().numpy().astype(np.int16))
    tmp = cache.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **{str(i): g for i, g in enumerate(grids)})
    tmp.replace(cache)
    return grids


class TileSampler:
    def __init__(self, grids: list[np.ndarray], window: int, seed: int):
        self.grids, self.window = grids, window
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int, th: int, tw: int, quality: int) -> torch.Tensor:
        """n random th x tw tiles at `quality` depths: (n, th, tw, quality), on the CPU."""
        out = np.empty((n, th, tw, quality), np.int64)
        for k in range(n):
            while True:
                g = self.grids[self.rng.integers(len(self.grids))]
                if g.shape[1] >= th and g.shape[2] >= tw:
                    break
            y = self.rng.integers(g.shape[1] - th + 1)
            x = self.rng.integers(g.shape[2] - tw + 1)
            out[k] = g[:quality, y:y + th, x:x + tw].transpose(1, 2, 0)
        return torch.from_numpy(out)


def tile_loss(prior: PriorModel, tiles: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """Mean cross-entropy in nats per index, on the prior's device; bf16: the network under bf16 autocast
    (the loss in fp32)."""
    tiles = tiles.to(prior.code_emb.weight.device)
    with torch.autocast(tiles.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = prior(tiles)  # (B, T, q, K)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tiles.reshape(-1))


@torch.no_grad()
def heldout_bits(prior: PriorModel, grids: list[np.ndarray], window: int) -> dict[int, float]:
    """Bits per index on full window x window tiles of held-out grids, per quality level."""
    prior.eval()
    result = {}
    for quality in range(1, prior.cfg.depth + 1):
        tiles = [g[:quality, y:y + window, x:x + window].transpose(1, 2, 0)
                 for g in grids
                 for y in range(0, g.shape[1] - window + 1, window)
                 for x in range(0, g.shape[2] - window + 1, window)]
        if tiles:
            batch = torch.from_numpy(np.stack(tiles).astype(np.int64))
            result[quality] = tile_loss(prior, batch).item() / math.log(2)
    prior.train()
    return result


def _prior_data(train_cfg: PriorTrainConfig, out: Path) -> tuple[Tokenizer, str, list[np.ndarray], list[np.ndarray]]:
    """The run's tokenizer, the name of its token cache, and the training and held-out grids (every
    n-th image with its mirror held out)."""
    tokenizer = read_tokenizer(Path(train_cfg.tokenizer or out))[0].eval()
    tokens = token_cache_name(tokenizer)  # named by the weights alone, wherever they run
    tokenizer.to(train_cfg.device)
    grids = token_cache(tokenizer, Path(train_cfg.data), out / tokens)
    every = max(2, round(1 / train_cfg.holdout))
    held = [g for k, g in enumerate(grids) if (k // 2) % every == 0]
    return tokenizer, tokens, [g for k, g in enumerate(grids) if (k // 2) % every != 0], held


def _optimizer(prior: PriorModel, train_cfg: PriorTrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on the matrices only (not on embeddings, biases or norms)."""
    decay = [p for n, p in prior.named_parameters() if p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in prior.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=train_cfg.lr, betas=(0.9, 0.95))


def _train_step(train_cfg: PriorTrainConfig, prior: PriorModel, opt: torch.optim.Optimizer,
                sampler: TileSampler) -> tuple[int, float]:
    """One step on a batch of tiles (full windows, or with probability edge_tiles a random smaller
    size) at a random quality level; returns the level and the loss in nats."""
    w = prior.cfg.window
    th, tw = (w, w) if sampler.rng.random() >= train_cfg.edge_tiles else sampler.rng.integers(1, w + 1, 2)
    quality = int(sampler.rng.integers(1, prior.cfg.depth + 1))
    loss = tile_loss(prior, sampler.batch(train_cfg.batch, int(th), int(tw), quality), train_cfg.precision == "bf16")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
    opt.step()
    return quality, loss.item()


def _start(train_cfg: PriorTrainConfig, prior_cfg: PriorConfig | None, tokenizer: Tokenizer, tokens: str,
           ckpt: Path, sampler_grids: list[np.ndarray]) -> tuple[PriorModel, torch.optim.Optimizer, TileSampler, dict]:
    """The prior, its optimizer and tile sampler, resumed from the exact checkpoint, from the lasting
    state (fresh AdamW moments, the warm-up again, fresh tile draws), or new (from the weights of
    `train_cfg.init` if given) at step 0; and where it stands:
    step, wall_seconds, warm_restart_step."""
    source = lasting.resume_source(ckpt, train_cfg.state)
    record = lasting.read_record(Path(train_cfg.state)) if source == "state" else {}
    if source == "exact":
        prior_cfg = PriorConfig.from_dict(json.loads(ckpt.with_suffix(".json").read_text())["model"])
    elif source == "state":
        if record["tokens"] != tokens:
            raise ValueError(f"the prior's state {train_cfg.state} learnt the grids of another encoder "
                             f"({record['tokens']}, not {tokens}): give it the tokenizer it was trained on")
        prior_cfg = PriorConfig.from_dict(record["model"])
    elif train_cfg.init:
        prior_cfg = PriorConfig.from_dict(lasting.read_record(Path(train_cfg.init))["model"])
        if (prior_cfg.codebook_size, prior_cfg.depth) != (tokenizer.cfg.codebook_size, tokenizer.cfg.depth):
            raise ValueError(f"the prior in {train_cfg.init} codes {prior_cfg.depth} x {prior_cfg.codebook_size} "
                             f"codes, the tokenizer {tokenizer.cfg.depth} x {tokenizer.cfg.codebook_size}")
    prior_cfg = prior_cfg or PriorConfig(codebook_size=tokenizer.cfg.codebook_size, depth=tokenizer.cfg.depth)
    prior = PriorModel(prior_cfg).to(train_cfg.device)
    opt = _optimizer(prior, train_cfg)
    sampler = TileSampler(sampler_grids, prior_cfg.window, train_cfg.seed)
    where = {"step": 0, "wall_seconds": 0.0, "warm_restart_step": 0}
    if source == "exact":
        meta = load_checkpoint(ckpt, {"model": prior}, {"opt": opt})
        sampler.rng.bit_generator.state = meta["data_rng"]
        where = {k: meta.get(k, 0) for k in where}
    elif source == "state":
        lasting.load_state(Path(train_cfg.state), {"prior": prior})
        where = {"step": record["step"], "wall_seconds": record["wall_seconds"], "warm_restart_step": record["step"]}
        sampler.rng = np.random.default_rng([train_cfg.seed, record["step"]])
    elif train_cfg.init:
        lasting.load_state(Path(train_cfg.init), {"prior": prior})
    return prior, opt, sampler, where


def train_prior(train_cfg: PriorTrainConfig, prior_cfg: PriorConfig | None = None) -> Path:
    out = Path(train_cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, tokens, train_grids, held = _prior_data(train_cfg, out)
    ckpt = out / "prior_ckpt"
    torch.manual_seed(train_cfg.seed)
    prior, opt, sampler, where = _start(train_cfg, prior_cfg, tokenizer, tokens, ckpt, train_grids)
    prior_cfg, step = prior.cfg, where["step"]
    clock = RunClock.resumed(step, where["wall_seconds"], train_cfg.minutes, train_cfg.stop_after)
    bar = tqdm(total=train_cfg.steps, initial=step, desc="prior")
    held_bits: dict = {}
    while step < train_cfg.steps:
        lr = (train_cfg.lr * warmup(step - where["warm_restart_step"], train_cfg.warmup)
              * cosine(step, train_cfg.steps))
        set_lr([opt], lr)
        quality, loss = _train_step(train_cfg, prior, opt, sampler)
        step += 1
        bar.update(1)
        bar.set_postfix(bits=f"{loss / math.log(2):.3f}", q=quality)
        record = {"step": step, "time": round(clock.seconds(), 1), "q": quality, "bits": loss / math.log(2), "lr": lr}
        stopping = clock.out_of_time(step)
        if checkpoint_due(step, train_cfg.eval_every, train_cfg.steps, stopping):
            held_bits = heldout_bits(prior, held, prior_cfg.window)
            record["heldout_bits"] = held_bits
        log_line(out / "prior_log.jsonl", record)
        if checkpoint_due(step, train_cfg.ckpt_every, train_cfg.steps, stopping):
            meta = {"step": step, "wall_seconds": clock.seconds(), "model": prior_cfg.to_dict(),
                    "train": asdict(train_cfg), "heldout_bits": held_bits, "tokens": tokens,
                    "warm_restart_step": where["warm_restart_step"]}
            save_checkpoint(ckpt, {"model": prior}, {"opt": opt}, {**meta, "data_rng": sampler.rng.bit_generator.state})
            if train_cfg.state:
                lasting.save_state(Path(train_cfg.state), {"prior": prior}, meta)
        if stopping:
            break
    bar.close()
    if not ckpt.with_suffix(".json").exists():  # a finished state resumed: the run folder still gets its checkpoint
        meta = {**lasting.read_record(Path(train_cfg.state)), "train": asdict(train_cfg),
                "data_rng": sampler.rng.bit_generator.state}
        save_checkpoint(ckpt, {"model": prior}, {"opt": opt}, meta)
    return ckpt
