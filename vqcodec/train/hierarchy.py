"""Training a hierarchy's fine side (hierarchy.py) over its frozen f16 tokenizer, as a lasting state.

Every crop trains a fine level on the f16 picture of `coarse_levels` depths: the f16 side never moves, so
its grids, its prior and its files stay valid. A new state's fine latent first trains unquantized for
`unquantized_share` of the stretch (its codebooks then start from k-means on what it has learnt to
carry), then through its residual codebooks, each crop at a random fine depth. Loss: L1 + LPIPS + the
codebook and commitment terms, and with `mse_weight` a squared error beside L1 (which asks for PSNR: large
errors cost more). The learning rate follows a cosine over the stretch's budget, so stretches
(and probes) compare at equal compute: CPU time of this process on the CPU, wall time on a GPU.

The frozen f16 side's pass over a batch (its encoder and decoder) costs more than the fine side's step
itself. With `reuse` N, N batches' frozen passes are kept and the steps take them in turn, each at its
own random fine depths; every N steps the one that has trained N steps is replaced by a fresh batch.

With `own_decoder` the fine side gets its own copy of the f16 decoder (hierarchy.grow_decoder), which trains
with it at `decoder_lr`: the picture under the detail may then move, while the coarse levels alone keep the
tokenizer's. Its forward and backward pass replace the frozen decoder's pass in every step.

    vqcodec train hierarchy ../shared/data/train ../shared/data/train_extra --resume eval/runs/vqgan-f16-f8 \
        --minutes 140
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..families import config_dict, read_tokenizer, read_tokenizer_record, shipped_tokenizer
from ..hierarchy import FineConfig, Hierarchy, grow_decoder, grow_refiner, grow_synthesis, read_hierarchy
from ..metrics import load_lpips
from .data import CropDataset
from .losses import reconstruction_loss
from .state import has_state, save_state
from .tokenizer import DeadCodeRestarter, kmeans_codebooks

LOG_EVERY = 10  # steps between the state's log lines


@dataclass
class HierarchyTrainConfig:
    data: tuple[str, ...]        # training folders (each keeps its own held-out pictures) or crop packs
    state: str                   # the lasting state: resumed when it exists, rewritten every save_every steps
    tokenizer: str = ""          # a new state's frozen f16 tokenizer, or one a state moves onto (a model
                                 # folder or a lasting state)
    minutes: float = 60.0        # the stretch's budget: CPU minutes of this process on a CPU, wall on a GPU
    lr: float = 2e-4
    unquantized_share: float = 0.2  # of a new state's first stretch, before its codebooks start
    batch: int = 8
    crop: int = 128
    save_every: int = 100
    held_out_every: int = 20     # the tokenizer run's rule: the scored pictures are never trained on
    synthesis_blocks: int = 0    # grow the fine synthesis to this many ResBlocks (hierarchy.grow_synthesis); 0: keep
    refine_width: int = 0        # give the fine synthesis an f4 stage of this many channels (grow_refiner); 0: keep
    reuse: int = 1               # steps each batch of crops trains (its frozen pass computed once)
    own_decoder: bool = False    # give the fine side its own copy of the f16 decoder (grow_decoder)
    decoder_lr: float = 5e-5     # that decoder's peak learning rate: a trained network, nudged
    mse_weight: float | None = None  # weight of a squared-error term in the loss (pixels in [-1, 1]); None: as
                                     # the state's last stretch had it (0, none, for a new state)
    seed: int = 0
    device: str = "cpu"
    quiet: bool = False


class Budget:
    """The stretch's clock: CPU time of this process on a CPU (fair beside other processes), wall time on
    a GPU (where CPU time says little)."""

    def __init__(self, minutes: float, device: str):
        self.clock = time.process_time if device == "cpu" else time.perf_counter
        self.start, self.seconds = self.clock(), minutes * 60

    def used(self) -> float:
        return self.clock() - self.start

    def share(self) -> float:
        return self.used() / self.seconds


def start_hierarchy(cfg: HierarchyTrainConfig, fine_cfg: FineConfig | None = None) -> tuple[Hierarchy, dict]:
    """The state's hierarchy and record, or a new hierarchy (fine_cfg or the default layout) over the
    frozen tokenizer, with an empty record; its synthesis grown to cfg.synthesis_blocks and given an f4
    stage of cfg.refine_width channels and its own f16 decoder where those are asked for.

    A state given a tokenizer moves onto it (a rebase): its fine side carries over to another tokenizer of
    the same layout, such as a shipped model's, whose grids, prior and files the hierarchy then shares (and
    which the state then names instead of carrying, families.shipped_tokenizer)."""
    if has_state(Path(cfg.state)):
        model, record = read_hierarchy(cfg.state)
        if cfg.tokenizer:
            tok = read_tokenizer(Path(cfg.tokenizer))[0]
            if config_dict(tok.cfg) != config_dict(model.tok.cfg):
                raise ValueError(f"{cfg.tokenizer} holds a tokenizer laid out as {config_dict(tok.cfg)}; the fine "
                                 f"side of {cfg.state} was trained over one laid out as {config_dict(model.tok.cfg)}")
            model.tok = tok
        model = grow_synthesis(model, cfg.synthesis_blocks) if cfg.synthesis_blocks else model
        model = grow_refiner(model, cfg.refine_width) if cfg.refine_width else model
        return (grow_decoder(model) if cfg.own_decoder else model), record
    if not cfg.tokenizer:
        raise ValueError(f"{cfg.state} holds no hierarchy state: give the f16 tokenizer a new one starts from")
    fine_cfg = fine_cfg or FineConfig()
    if cfg.synthesis_blocks:
        fine_cfg = replace(fine_cfg, synthesis_blocks=cfg.synthesis_blocks)
    if cfg.refine_width:
        fine_cfg = replace(fine_cfg, refine_width=cfg.refine_width)
    model = Hierarchy(read_tokenizer(Path(cfg.tokenizer))[0], fine_cfg)
    return (grow_decoder(model) if cfg.own_decoder else model), {}


@torch.no_grad()
def start_codebooks(model: Hierarchy, data: CropDataset, batches: int = 8) -> None:
    """The fine codebooks from k-means on the fine latents of `batches` batches of crops."""
    device = model.fine.quantizer.codebooks.device
    zs = []
    for _ in range(batches):
        x = data.batch(8).to(device)
        features, z = model.coarse(x)
        coarse = model.tok.quantizer.quantize(z)[0][:, :model.fine.cfg.coarse_levels]
        zs.append(model.fine_latent(features, x, model.tok.quantizer.lookup(coarse))[0])
    kmeans_codebooks(model.fine.quantizer, torch.cat(zs))


@dataclass
class FrozenPass:
    """A batch of crops and what the frozen f16 side makes of them: most of a step's compute."""
    x: torch.Tensor                # crops (B, 3, H, W)
    features: torch.Tensor         # the f16 encoder's f8 features (B, C8, H/8, W/8)
    z_coarse: torch.Tensor         # the sum of the first coarse_levels codes (B, D, H/16, W/16)
    x_coarse: torch.Tensor | None  # the frozen decoder's picture of z_coarse (B, 3, H, W); None where the
                                   # fine side's own decoder draws it in the step


@torch.no_grad()
def frozen_pass(model: Hierarchy, x: torch.Tensor) -> FrozenPass:
    features, z = model.coarse(x)
    codes = model.tok.quantizer.quantize(z)[1]                               # (B, depth, dim, h, w)
    z_coarse = codes[:, :model.fine.cfg.coarse_levels].sum(1)
    return FrozenPass(x, features, z_coarse, model.tok.decoder(z_coarse) if model.fine.decoder is None else None)


def fine_step(model: Hierarchy, crops: FrozenPass, quantized: bool, lpips_model: torch.nn.Module,
              restarter: DeadCodeRestarter, mse_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch of crops, each at a random fine depth."""
    x = crops.x
    depth = model.fine.quantizer.depth
    fine_depth = torch.randint(1, depth + 1, (len(x),), device=x.device)
    x_coarse = crops.x_coarse if crops.x_coarse is not None else model.fine.decoder(crops.z_coarse)
    z_fine = model.fine.latent(crops.features, x, x_coarse.detach())         # (B, dim, 2h, 2w)
    vq_loss = torch.zeros((), device=x.device)
    if quantized:
        indices, fine_codes, residuals = model.fine.quantizer.quantize(z_fine)
        vq_loss = F.mse_loss(fine_codes, residuals.detach()) + 0.25 * F.mse_loss(residuals, fine_codes.detach())
        keep = (torch.arange(depth, device=x.device)[None] < fine_depth[:, None]).float()
        z_q = (fine_codes.detach() * keep[:, :, None, None, None]).sum(1)
        z_fine = z_fine + (z_q - z_fine).detach()                          # straight through
        restarter.observe(indices, residuals.detach())
    rec = model.fine.add_detail(z_fine, x_coarse)
    loss, parts = reconstruction_loss(rec, x, lpips_model(rec, x).mean(), mse_weight=mse_weight)
    return loss + vq_loss, {**parts, "vq": vq_loss.item()}


def train_step(model: Hierarchy, opt: torch.optim.Optimizer, crops: FrozenPass, quantized: bool,
               lpips_model: torch.nn.Module, restarter: DeadCodeRestarter, step: int,
               mse_weight: float = 0.0) -> dict[str, float]:
    """One optimizer step of the fine side on a batch of crops, the stretch's `step`-th (from 1): every
    200th of a quantized side also restarts its dead codes. Returns the loss's parts."""
    loss, parts = fine_step(model, crops, quantized, lpips_model, restarter, mse_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if quantized and step % 200 == 0 and restarter.filled:
        restarter.restart(model.fine.quantizer.codebooks)
    return parts


def last_mse_weight(record: dict) -> float:
    """The squared-error weight of a state's last stretch: a resume keeps the loss it trained with."""
    stretches = record.get("stretches", [])
    return float(stretches[-1]["args"].get("mse_weight", 0.0)) if stretches else 0.0


def train_hierarchy(cfg: HierarchyTrainConfig, fine_cfg: FineConfig | None = None) -> dict:
    """One stretch of the run (a new state's fine side laid out by fine_cfg); returns the state's record
    as written last."""
    torch.manual_seed(cfg.seed)
    model, record = start_hierarchy(cfg, fine_cfg)
    model = model.to(cfg.device).eval()
    model.tok.requires_grad_(False)
    model.fine.train()
    own = set(model.fine.decoder.parameters()) if model.fine.decoder is not None else set()
    opt = torch.optim.Adam([{"params": [p for p in model.fine.parameters() if p not in own], "peak": cfg.lr},
                            {"params": list(own), "peak": cfg.decoder_lr}], lr=cfg.lr, betas=(0.5, 0.9))
    lpips_model = load_lpips().to(cfg.device)
    data = CropDataset(os.pathsep.join(cfg.data), cfg.crop, seed=cfg.seed, held_out_every=cfg.held_out_every,
                       quiet=cfg.quiet)
    quantizer = model.fine.quantizer
    restarter = DeadCodeRestarter(quantizer.depth, quantizer.codebooks.shape[1], quantizer.codebooks.shape[2]).to(cfg.device)
    before = {"step": record.get("step", 0), "train_pixels": record.get("train_pixels", 0),
              "cpu_seconds": record.get("cpu_seconds", 0.0)}
    ancestor = record.get("ancestor")
    if cfg.tokenizer or not ancestor:  # a new state's tokenizer, or the one it moves onto
        base = read_tokenizer_record(cfg.tokenizer) if cfg.tokenizer else {}
        ancestor = {"state": cfg.tokenizer, "step": base.get("step", base.get("tokenizer_steps")),
                    "train_pixels": base.get("train_pixels"), "cpu_seconds": base.get("cpu_seconds")}
    # a shipped model's tokenizer is named, not carried: the state stays within what a commit may hold
    frozen = shipped_tokenizer(cfg.tokenizer) if cfg.tokenizer else record.get("frozen_tokenizer")
    modules = {"fine": model.fine} if frozen else {"model": model.tok, "fine": model.fine}
    if cfg.mse_weight is None:
        cfg = replace(cfg, mse_weight=last_mse_weight(record))
    budget, step, log, quantized = Budget(cfg.minutes, cfg.device), 0, [], bool(record)
    bar = tqdm(desc="hierarchy", unit="step", file=sys.stderr, disable=cfg.quiet)

    def save() -> dict:
        written = {"step": before["step"] + step,
                   "train_pixels": before["train_pixels"] + step * cfg.batch * cfg.crop ** 2,
                   "cpu_seconds": round(before["cpu_seconds"] + budget.used(), 1), "ancestor": ancestor,
                   **({"frozen_tokenizer": frozen} if frozen else {}),
                   "model": config_dict(model.tok.cfg), "fine": model.fine.cfg.to_dict(),
                   "stretches": record.get("stretches", []) + [
                       {"from_step": before["step"], "to_step": before["step"] + step,
                        "args": {k: str(v) for k, v in asdict(cfg).items()}}],
                   "log": record.get("log", []) + log}
        save_state(Path(cfg.state), modules, written)
        return written

    written, batches = record, []  # cfg.reuse batches' frozen passes
    while budget.share() < 1:
        if not quantized and budget.share() >= cfg.unquantized_share:
            start_codebooks(model, data)
            quantized = True
        schedule = min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * budget.share()))
        for group in opt.param_groups:
            group["lr"] = group["peak"] * schedule
        slot, turn = step % cfg.reuse, step // cfg.reuse  # slot k is replaced on the turns where turn + k = 0 mod N
        if slot == len(batches) or (turn + slot) % cfg.reuse == 0:
            fresh = frozen_pass(model, data.batch(cfg.batch).to(cfg.device))
            batches[slot:slot + 1] = [fresh]
        step += 1
        parts = train_step(model, opt, batches[slot], quantized, lpips_model, restarter, step, cfg.mse_weight)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
        if step % LOG_EVERY == 0:
            log.append({"step": before["step"] + step, "cpu": round(before["cpu_seconds"] + budget.used(), 1),
                        **{k: round(v, 5) for k, v in parts.items()}, "quantized": quantized})
        if step % cfg.save_every == 0 or budget.share() >= 1:
            written = save()
    bar.close()
    return written
