"""Train the VQ-GAN tokenizer: L1 + LPIPS + codebook/commitment losses, then a hinge GAN loss (PatchGAN
on pixels, or heads on frozen AlexNet features) with the adaptive weight once reconstruction has warmed
up. Resumable; data-parallel under torchrun (DistributedDataParallel: each process draws its own crops,
gradients are averaged)."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..metrics import load_lpips
from ..tokenizer import Decoder, ResidualQuantizer, Tokenizer, TokenizerConfig
from ..families import config_dict, read_tokenizer, tokenizer_config
from .checkpoint import load_checkpoint, save_checkpoint
from . import state as lasting
from . import distributed
from .data import CropDataset, folders
from .heldout import held_out_pictures, score
from .losses import (FeatureDiscriminator, PatchDiscriminator, adaptive_gan_weight, generator_gan_loss,
                     hinge_d_loss, lpips_features, reconstruction_loss)
from .loop import RunClock, checkpoint_due, decay, log_line, set_lr, warmup


@dataclass
class TokenizerTrainConfig:
    data: str                    # the training folder, or several joined by os.pathsep (':')
    out: str
    steps: int = 3000
    batch: int = 8
    crop: int = 128
    lr: float = 2e-4
    warmup: int = 100
    decay_from: int = 0          # from this step the learning rate falls (cosine) to 0 at `steps`; 0: constant
    lpips_weight: float = 1.0
    mse_weight: float = 0.0      # a squared-error term beside L1 (pixels in [-1, 1]): large errors weigh more,
                                 # which asks for PSNR and against the grid-locked hatching LPIPS lets through
    disc_start: int = 2000       # GAN off until reconstruction has converged
    disc_warmup: int = 0         # the discriminator trains alone this many steps before disc_start: a fresh
                                 # one against a trained generator gives a useless gradient at first
    disc_weight: float = 0.8
    discriminator: str = "patchgan"  # or "projected": FeatureDiscriminator on LPIPS's frozen AlexNet
    restart_every: int = 50      # dead-code restarts: entries unused for this many steps
    ckpt_every: int = 100
    log_every: int = 10
    freeze_encoder: bool = False  # decoder-only fine-tuning: the token grids stay fixed
    init_from: str = ""          # a new run starts from this model folder's tokenizer (more depths allowed)
    new_code_scale: float = 0.1  # a wider code's new encoder outputs start at this times their initial weights
    minutes: float = 0.0         # end (with a checkpoint) once the run's total wall time passes this
    stop_after: int = 0          # end this run (with a checkpoint) after this many steps; 0 = no limit
    stretch_minutes: float = 0.0  # end this stretch (with a checkpoint) after this much wall time; 0 = no limit
    seed: int = 0
    state: str = ""              # the run's lasting state (state.py), written with every checkpoint
    held_out_every: int = 0      # never train on every n-th image (heldout.py; 0: train on all)
    eval_every: int = 0          # score the held-out pictures every this many steps into the state
    ancestor_pixels: int = 0     # training pixels init_from's weights had seen before this run
    precision: str = "fp32"      # "bf16": the networks under bf16 autocast (GPUs; the quantizer stays fp32)
    device: str = "cpu"          # "cuda": on the GPU (under torchrun: each process on its local rank's)


@torch.no_grad()
def kmeans_init(model: Tokenizer, data: CropDataset, batches: int, iters: int = 10, first_depth: int = 0) -> None:
    """Initialise the codebooks of depths >= first_depth by k-means on the residuals each will see
    (those of the earlier depths, which are kept)."""
    device = model.quantizer.codebooks.device
    kmeans_codebooks(model.quantizer, torch.cat([model.encoder(data.batch(8).to(device)) for _ in range(batches)]),
                     iters, first_depth)


@torch.no_grad()
def kmeans_codebooks(quantizer: ResidualQuantizer, z: torch.Tensor, iters: int = 10, first_depth: int = 0) -> None:
    """The codebooks of depths >= first_depth from k-means on the residuals of the latents z (B, dim, H, W)
    that each depth sees; an empty cluster takes a random residual."""
    r = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    K = quantizer.codebooks.shape[1]
    for d in range(quantizer.depth):
        if d < first_depth:
            r = r - quantizer.codebooks[d][torch.cdist(r, quantizer.codebooks[d]).argmin(1)]
            continue
        centers = r[torch.randint(len(r), (K,))].clone()
        for _ in range(iters):
            assign = torch.cdist(r, centers).argmin(1)
            sums = torch.zeros_like(centers).index_add_(0, assign, r)
            counts = torch.bincount(assign, minlength=K).float()
            filled = counts > 0
            centers[filled] = sums[filled] / counts[filled, None]
            centers[~filled] = r[torch.randint(len(r), (int((~filled).sum()),))]
        quantizer.codebooks.data[d] = centers
        r = r - centers[torch.cdist(r, centers).argmin(1)]


class DeadCodeRestarter(torch.nn.Module):
    """Re-seeds codebook entries that no vector chose recently with recent residuals (+ noise).
    A module only so that its buffers travel in checkpoints."""

    def __init__(self, depth: int, K: int, dim: int, buffer: int = 4096):
        super().__init__()
        self.register_buffer("used", torch.zeros(depth, K, dtype=torch.bool))
        self.register_buffer("buffer", torch.zeros(depth, buffer, dim))
        self.register_buffer("filled_", torch.zeros((), dtype=torch.long))

    @property
    def filled(self) -> int:
        return int(self.filled_)

    def observe(self, indices: torch.Tensor, residuals: torch.Tensor) -> None:
        """indices (B, depth, h, w); residuals (B, depth, D, h, w)."""
        depth = indices.shape[1]
        for d in range(depth):
            self.used[d, indices[:, d].flatten()] = True
        r = residuals.permute(1, 0, 3, 4, 2).reshape(depth, -1, residuals.shape[2])
        self.buffer = torch.cat([r, self.buffer], 1)[:, :self.buffer.shape[1]]
        self.filled_.fill_(min(self.buffer.shape[1], self.filled + r.shape[1]))

    @torch.no_grad()
    def restart(self, codebooks: torch.nn.Parameter) -> list[int]:
        """Returns the number of restarted entries per depth."""
        counts = []
        for d in range(codebooks.shape[0]):
            dead = (~self.used[d]).nonzero().flatten()
            if len(dead):
                pick = torch.randint(self.filled, (len(dead),))
                noise = torch.randn(len(dead), codebooks.shape[2]).to(codebooks.device)
                codebooks.data[d, dead] = self.buffer[d, pick.to(self.buffer.device)] + 1e-3 * noise
            counts.append(len(dead))
        self.used.zero_()
        return counts


def _grown_decoder_names(source: TokenizerConfig, mine: TokenizerConfig) -> dict[str, str]:
    """Where each layer of the source's decoder sits in a decoder with more ResBlocks per resolution: the
    layers line up in order, and every added ResBlock sits where the source has none."""
    old, new = Decoder(source).body, Decoder(mine).body
    names, j = {}, 0
    for i, layer in enumerate(new):
        if j < len(old) and type(layer) is type(old[j]) and \
                [p.shape for p in layer.parameters()] == [p.shape for p in old[j].parameters()]:
            names[f"decoder.body.{j}."] = f"decoder.body.{i}."
            j += 1
    return names


def warm_start(model: Tokenizer, folder: Path, new_code_scale: float = 0.1) -> int:
    """Load the tokenizer of a model folder or a lasting state into a tokenizer of the same layout with at
    least as many quantizer depths, at least as wide a code and at least as many decoder blocks; returns
    how many depths came from the folder (the rest still need initialising).

    Both growths keep the folder's function. A wider code: the encoder's extra output channels start at
    new_code_scale times their fresh initialisation and the decoder's input weights for them start at
    zero. More decoder blocks: each added ResBlock starts with its last convolution at zero, an identity.
    Codebooks of another width cannot be kept: then no depth comes from the folder."""
    source_model, _ = read_tokenizer(folder)
    source, state, mine = source_model.cfg, source_model.state_dict(), model.cfg
    grows = ("depth", "code_dim", "decoder_blocks")
    same_layout = {**source.to_dict(), **dict.fromkeys(grows, 0)} == {**mine.to_dict(), **dict.fromkeys(grows, 0)}
    blocks = [cfg.decoder_blocks or (1,) * len(cfg.channels) for cfg in (source, mine)]
    if not same_layout or source.depth > mine.depth or source.code_dim > mine.code_dim or \
            any(a > b for a, b in zip(*blocks)):
        raise ValueError(f"cannot start from {folder}: its tokenizer {source} differs from {mine} beyond adding "
                         "depths, code dimensions or decoder blocks")
    renames = _grown_decoder_names(source, mine)

    def renamed(key: str) -> str:
        prefix = ".".join(key.split(".")[:3]) + "."
        return renames[prefix] + key[len(prefix):] if prefix in renames else key

    state = {renamed(k): v for k, v in state.items()}
    own = model.state_dict()
    for name in own:  # the added ResBlocks: identities until trained
        if name.startswith("decoder.body.") and name not in state:
            state[name] = own[name].clone().zero_() if ".conv2." in name else own[name]
    source_books = state.pop("quantizer.codebooks")
    for name, value in state.items():
        if own[name].shape != value.shape:  # the encoder's output layer or the decoder's input layer
            fresh = own[name].clone()
            target = fresh.zero_() if name.startswith("decoder.") else fresh.mul_(new_code_scale)
            target[tuple(slice(0, n) for n in value.shape)] = value
            state[name] = target
    codebooks = own["quantizer.codebooks"].clone()
    kept = source.depth if source.code_dim == mine.code_dim else 0
    if kept:
        codebooks[:kept] = source_books
    model.load_state_dict({**state, "quantizer.codebooks": codebooks})
    return kept


@dataclass
class TokenizerRun:
    """A tokenizer run's state: what a checkpoint holds and what a step needs."""
    model: Tokenizer
    disc: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    data: CropDataset
    restarter: DeadCodeRestarter
    step: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0     # process CPU time of every stretch before this one
    train_pixels: int = 0        # every training pixel the weights have seen, ancestors included
    warm_restart_step: int = 0   # the step this stretch restarted its optimizers at (warm-up from there)
    evaluations: list = field(default_factory=list)  # held-out scores: {step, train_pixels, levels}
    stretches: list = field(default_factory=list)    # every stretch of training: steps, wall, CPU, device

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model, "disc": self.disc, "restarter": self.restarter}

    def lasting_modules(self, train_cfg: TokenizerTrainConfig) -> dict[str, torch.nn.Module]:
        """What the lasting state keeps: the tokenizer, and the discriminator once it trains."""
        disc_on = self.step >= train_cfg.disc_start - train_cfg.disc_warmup
        return {"model": self.model, **({"disc": self.disc} if disc_on else {})}

    def record(self) -> dict:
        """The run's own figures, as both kinds of checkpoint keep them."""
        return {"step": self.step, "train_pixels": self.train_pixels, "cpu_seconds": round(self.cpu_seconds, 1),
                "wall_seconds": round(self.wall_seconds, 1), "warm_restart_step": self.warm_restart_step,
                "evaluations": self.evaluations, "stretches": self.stretches}

    def restore(self, record: dict) -> None:
        self.step, self.wall_seconds = record["step"], record["wall_seconds"]
        self.cpu_seconds = record.get("cpu_seconds", 0.0)
        self.train_pixels = record.get("train_pixels", 0)
        self.warm_restart_step = record.get("warm_restart_step", 0)
        self.evaluations = record.get("evaluations", [])
        self.stretches = record.get("stretches", [])

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}


def _start_run(train_cfg: TokenizerTrainConfig, model_cfg: TokenizerConfig | None, ckpt: Path, rank: int, world: int,
               device: torch.device) -> TokenizerRun:
    """Resume the run from its exact checkpoint or its lasting state, or start it (from a model folder,
    k-means codebooks)."""
    torch.manual_seed(train_cfg.seed)  # the same on every rank: quality draws and restart picks agree
    source = lasting.resume_source(ckpt, train_cfg.state)
    if source == "exact":
        model_cfg = tokenizer_config(json.loads(ckpt.with_suffix(".json").read_text())["model"])
    elif source == "state":
        model_cfg = tokenizer_config(lasting.read_record(Path(train_cfg.state))["model"])
    model_cfg = model_cfg or TokenizerConfig()
    model, disc = Tokenizer(model_cfg).to(device), DISCRIMINATORS[train_cfg.discriminator]().to(device)
    run = TokenizerRun(model, disc, torch.optim.Adam(model.parameters(), lr=train_cfg.lr, betas=(0.5, 0.9)),
                       torch.optim.Adam(disc.parameters(), lr=train_cfg.lr, betas=(0.5, 0.9)),
                       CropDataset(train_cfg.data, train_cfg.crop, seed=train_cfg.seed + rank,
                                   held_out_every=train_cfg.held_out_every),
                       DeadCodeRestarter(model_cfg.depth, model_cfg.codebook_size, model_cfg.code_dim).to(device))
    if source == "exact":
        meta = load_checkpoint(ckpt, run.modules, run.optimizers, optional=("restarter",))
        run.restore(meta)
        states = meta.get("data_rng_per_rank", [meta["data_rng"]])
        if len(states) == world:
            run.data.rng.bit_generator.state = states[rank]
        else:  # resumed with another number of processes: fresh, distinct crop streams
            run.data.rng = np.random.default_rng([train_cfg.seed, run.step, rank])
    elif source == "state":  # fresh optimizers and crop streams; the warm-up starts again here
        run.restore(lasting.load_state(Path(train_cfg.state), {"model": model, "disc": disc}))
        run.warm_restart_step = run.step
        run.data.rng = np.random.default_rng([train_cfg.seed, run.step, rank])
    else:  # rank 0's initialisation reaches the others when DDP wraps the model
        kept = warm_start(model, Path(train_cfg.init_from), train_cfg.new_code_scale) if train_cfg.init_from else 0
        kmeans_init(model, run.data, batches=8, first_depth=kept)
        run.train_pixels = train_cfg.ancestor_pixels
    if train_cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
        model.quantizer.requires_grad_(False)
    return run


DISCRIMINATORS = {"patchgan": PatchDiscriminator, "projected": FeatureDiscriminator}


def _critic(train_cfg: TokenizerTrainConfig, train_disc: torch.nn.Module, lpips_model: torch.nn.Module | None,
            images: torch.Tensor) -> list[torch.Tensor]:
    """The discriminator's logit maps for images (B, 3, H, W) in [-1, 1]."""
    if train_cfg.discriminator == "projected":
        return train_disc(lpips_features(lpips_model, images))
    return [train_disc(images)]


def _train_step(train_cfg: TokenizerTrainConfig, run: TokenizerRun, train_model: torch.nn.Module,
                train_disc: torch.nn.Module, lpips_model: torch.nn.Module | None, device: torch.device) -> dict:
    """One generator step (L1 + LPIPS + VQ, plus the adaptive-weight GAN term once it is on) and one
    discriminator step once the discriminator is on; returns the step's statistics. lpips_model: the
    perceptual loss (when lpips_weight > 0) and the projected discriminator's backbone."""
    model, disc, model_cfg = run.model, run.disc, run.model.cfg
    x = run.data.batch(train_cfg.batch).to(device)
    quality = torch.randint(1, model_cfg.depth + 1, (train_cfg.batch,))
    quality[0] = model_cfg.depth  # one full-depth sample per batch keeps the top level trained
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=train_cfg.precision == "bf16"):
        o = train_model(x, quality.to(device))
        rec = o["recon"].float()
        perceptual = (lpips_model(rec, x).float().mean() if train_cfg.lpips_weight
                      else torch.zeros((), device=device))
    rec_loss, stats = reconstruction_loss(rec, x, perceptual, train_cfg.lpips_weight, train_cfg.mse_weight)
    loss = rec_loss + o["vq_loss"]
    stats["vq"] = o["vq_loss"].item()
    if run.step >= train_cfg.disc_start:
        disc.requires_grad_(False)  # the generator's step leaves the discriminator alone
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=train_cfg.precision == "bf16"):
            g_loss = generator_gan_loss(_critic(train_cfg, disc, lpips_model, rec))
        lam = adaptive_gan_weight(rec_loss, g_loss, model.decoder.last.weight, train_cfg.disc_weight)
        loss = loss + lam * g_loss
        stats.update(g=g_loss.item(), lam=lam.item())
    run.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    run.opt_g.step()
    if run.step >= train_cfg.disc_start - train_cfg.disc_warmup:
        disc.requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=train_cfg.precision == "bf16"):
            d_loss = hinge_d_loss(_critic(train_cfg, train_disc, lpips_model, x),
                                  _critic(train_cfg, train_disc, lpips_model, rec.detach()))
        run.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        run.opt_d.step()
        stats["d"] = d_loss.item()
    run.restarter.observe(o["indices"], o["residuals"])
    return stats


def _restart_dead_codes(run: TokenizerRun, world: int) -> list[int]:
    """An entry any rank used is alive; rank 0's re-seeded codebooks become everyone's."""
    if world > 1:
        used = run.restarter.used.to(torch.uint8)
        torch.distributed.all_reduce(used, torch.distributed.ReduceOp.MAX)
        run.restarter.used.copy_(used.bool())
    counts = run.restarter.restart(run.model.quantizer.codebooks)
    distributed.broadcast_(run.model.quantizer.codebooks.data, world)
    return counts


@dataclass
class Stretch:
    """One process's stretch of a run: where it began, to account its wall and CPU time and its steps
    into the run's record."""
    step: int
    wall_seconds: float
    cpu_seconds: float
    cpu_clock: float    # time.process_time() when it began

    @classmethod
    def begin(cls, run: TokenizerRun, device: torch.device, world: int, data: str, changes: dict) -> "Stretch":
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        run.stretches.append({"from_step": run.step, "to_step": run.step, "wall_seconds": 0.0, "cpu_seconds": 0.0,
                              "device": f"{world} x {name}", "warm_restart": run.warm_restart_step == run.step > 0,
                              "data": data, "changes": changes})
        return cls(run.step, run.wall_seconds, run.cpu_seconds, time.process_time())

    def account(self, run: TokenizerRun, clock: RunClock, world: int) -> None:
        cpu = torch.tensor(time.process_time() - self.cpu_clock, dtype=torch.float64)
        if world > 1:
            torch.distributed.all_reduce(cpu)
        run.wall_seconds = clock.seconds()
        run.cpu_seconds = self.cpu_seconds + float(cpu)
        run.stretches[-1].update(to_step=run.step, wall_seconds=round(run.wall_seconds - self.wall_seconds, 1),
                                 cpu_seconds=round(run.cpu_seconds - self.cpu_seconds, 1))


# where a run's checkpoints live and when a process stops: never part of what a stretch changes
_PLACES = ("data", "out", "state", "minutes", "stretch_minutes", "stop_after", "device")


def _changes(train_cfg: TokenizerTrainConfig, run_cfg: TokenizerTrainConfig) -> dict:
    mine, theirs = asdict(train_cfg), asdict(run_cfg)
    return {k: v for k, v in mine.items() if v != theirs[k] and k not in _PLACES}


def _save(train_cfg: TokenizerTrainConfig, run: TokenizerRun, ckpt: Path, rank: int, world: int) -> None:
    """Rank 0 writes the checkpoint, after checking that the replicas agree, with every rank's crop RNG."""
    replicas = distributed.replica_digests(run.model, world)
    if len(set(replicas)) > 1:
        raise RuntimeError(f"data-parallel replicas drifted apart at step {run.step}: {replicas}")
    rng_states: list = [None] * world
    if world > 1:
        torch.distributed.all_gather_object(rng_states, run.data.rng.bit_generator.state)
    else:
        rng_states = [run.data.rng.bit_generator.state]
    if rank == 0:
        meta = {**run.record(), "model": config_dict(run.model.cfg), "train": asdict(train_cfg)}
        if train_cfg.out:
            save_checkpoint(ckpt, run.modules, run.optimizers,
                            {**meta, "data_rng": rng_states[0], "data_rng_per_rank": rng_states,
                             "world_size": world, "replicas": replicas})
        if train_cfg.state:
            lasting.save_state(Path(train_cfg.state), run.lasting_modules(train_cfg), meta)


def _evaluate(train_cfg: TokenizerTrainConfig, run: TokenizerRun, pictures: list, lpips_model: torch.nn.Module,
              log: Path) -> None:
    """Score the held-out pictures into the run's record and its log."""
    levels = score(run.model, pictures, lpips_model)
    run.evaluations.append({"step": run.step, "train_pixels": run.train_pixels, "levels": levels})
    log_line(log, {"step": run.step, "heldout": levels})


def train_tokenizer(train_cfg: TokenizerTrainConfig, model_cfg: TokenizerConfig | None = None,
                    run_cfg: TokenizerTrainConfig | None = None) -> Path:
    """Train (or resume) a tokenizer; returns the exact checkpoint's path, or the lasting state's folder
    when the run keeps only that. run_cfg: the run's own config, which its checkpoints keep, where this
    stretch trains with another (a GPU's batch, say); the stretch's record says what differed. Under
    torchrun every process runs this; rank 0 logs and writes."""
    if not (train_cfg.out or train_cfg.state):
        raise ValueError("a tokenizer run needs a run folder, a lasting state folder, or both")
    if train_cfg.decay_from and train_cfg.decay_from >= train_cfg.steps:
        raise ValueError(f"decay_from ({train_cfg.decay_from}) must come before the run's last step ({train_cfg.steps})")
    if train_cfg.discriminator not in DISCRIMINATORS:
        raise ValueError(f"no discriminator {train_cfg.discriminator!r}: one of {', '.join(DISCRIMINATORS)}")
    rank, world, device = distributed.setup(train_cfg.device)
    out = Path(train_cfg.out or train_cfg.state)
    ckpt = out / "tokenizer_ckpt"
    for folder in (train_cfg.out, train_cfg.state):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    run = _start_run(train_cfg, model_cfg, ckpt, rank, world, device)
    train_model, train_disc = run.model, run.disc
    if world > 1:
        ids = [device] if device.type == "cuda" else None
        train_model = DistributedDataParallel(run.model, device_ids=ids)
        train_disc = DistributedDataParallel(run.disc, device_ids=ids)
    needs_lpips = train_cfg.lpips_weight or train_cfg.eval_every or train_cfg.discriminator == "projected"
    lpips_model = load_lpips().to(device) if needs_lpips else None
    scored = folders(train_cfg.data)[0]  # the first folder's held-out pictures are the run's scores
    pictures = held_out_pictures(scored) if train_cfg.eval_every and rank == 0 else []
    if train_cfg.eval_every and rank == 0 and not pictures:
        tqdm.write(f"no held-out picture of {scored} is 256 px a side: the run is not scored", file=sys.stderr)
    log = Path(train_cfg.state) / lasting.LOG if train_cfg.state else out / "tokenizer_log.jsonl"
    clock = RunClock.resumed(run.step, run.wall_seconds, train_cfg.minutes, train_cfg.stop_after,
                             train_cfg.stretch_minutes)
    stretch = Stretch.begin(run, device, world, train_cfg.data, _changes(train_cfg, run_cfg or train_cfg))
    bar = tqdm(total=train_cfg.steps, initial=run.step, desc="tokenizer", disable=rank != 0)
    while run.step < train_cfg.steps:
        lr = (train_cfg.lr * warmup(run.step - run.warm_restart_step, train_cfg.warmup)
              * decay(run.step, train_cfg.decay_from, train_cfg.steps))
        set_lr([run.opt_g, run.opt_d], lr)
        stats = {**_train_step(train_cfg, run, train_model, train_disc, lpips_model, device), "lr": lr}
        run.step += 1
        run.train_pixels += train_cfg.batch * train_cfg.crop ** 2 * world
        if run.step % train_cfg.restart_every == 0 and not train_cfg.freeze_encoder:
            stats["restarted"] = _restart_dead_codes(run, world)
        bar.update(1)
        bar.set_postfix(l1=f"{stats['l1']:.3f}", lpips=f"{stats['lpips']:.3f}")
        if rank == 0 and (run.step % train_cfg.log_every == 0 or "restarted" in stats):
            log_line(log, {"step": run.step, "time": round(clock.seconds(), 1), **stats})
        if pictures and run.step % train_cfg.eval_every == 0:
            _evaluate(train_cfg, run, pictures, lpips_model, log)
        stopping = distributed.any_rank(clock.out_of_time(run.step), world, device)
        if checkpoint_due(run.step, train_cfg.ckpt_every, train_cfg.steps, stopping):
            stretch.account(run, clock, world)
            _save(run_cfg or train_cfg, run, ckpt, rank, world)
        if stopping:
            break
    bar.close()
    if world > 1:
        torch.distributed.barrier()  # rank 0's checkpoint is complete before anyone returns
        torch.distributed.destroy_process_group()
    return ckpt if train_cfg.out else Path(train_cfg.state)
