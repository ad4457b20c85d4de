"""Train the VQ-GAN tokenizer: L1 + LPIPS + codebook/commitment losses, then PatchGAN hinge loss
with the adaptive weight once reconstruction has warmed up. Resumable."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, asdict
from pathlib import Path

import torch
from tqdm import tqdm

from ..metrics import load_lpips
from ..tokenizer import Tokenizer, TokenizerConfig
from .checkpoint import load_checkpoint, save_checkpoint
from .data import CropDataset
from .losses import PatchDiscriminator, adaptive_gan_weight, hinge_d_loss


@dataclass
class TokenizerTrainConfig:
    data: str
    out: str
    steps: int = 3000
    batch: int = 8
    crop: int = 128
    lr: float = 2e-4
    warmup: int = 100
    lpips_weight: float = 1.0
    disc_start: int = 2000       # GAN off until reconstruction has converged
    disc_weight: float = 0.8
    restart_every: int = 50      # dead-code restarts: entries unused for this many steps
    ckpt_every: int = 100
    log_every: int = 10
    freeze_encoder: bool = False  # decoder-only fine-tuning: the token grids stay fixed
    minutes: float = 0.0         # end (with a checkpoint) once the run's total wall time passes this
    stop_after: int = 0          # end this run (with a checkpoint) after this many steps; 0 = no limit
    seed: int = 0


@torch.no_grad()
def kmeans_init(model: Tokenizer, data: CropDataset, batches: int, iters: int = 10) -> None:
    """Initialise each depth's codebook by k-means on the residuals that depth will see."""
    q = model.quantizer
    z = torch.cat([model.encoder(data.batch(8)) for _ in range(batches)])
    r = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    K = q.codebooks.shape[1]
    for d in range(q.depth):
        centers = r[torch.randint(len(r), (K,))].clone()
        for _ in range(iters):
            assign = torch.cdist(r, centers).argmin(1)
            sums = torch.zeros_like(centers).index_add_(0, assign, r)
            counts = torch.bincount(assign, minlength=K).float()
            filled = counts > 0
            centers[filled] = sums[filled] / counts[filled, None]
            centers[~filled] = r[torch.randint(len(r), (int((~filled).sum()),))]
        q.codebooks.data[d] = centers
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
                codebooks.data[d, dead] = self.buffer[d, pick] + 1e-3 * torch.randn(len(dead), codebooks.shape[2])
            counts.append(len(dead))
        self.used.zero_()
        return counts


def train_tokenizer(tc: TokenizerTrainConfig, mc: TokenizerConfig | None = None) -> Path:
    """Train (or resume) a tokenizer; returns the checkpoint path."""
    out = Path(tc.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "tokenizer_ckpt"
    torch.manual_seed(tc.seed)
    if ckpt.with_suffix(".json").exists():
        mc = TokenizerConfig.from_dict(json.loads(ckpt.with_suffix(".json").read_text())["model"])
    mc = mc or TokenizerConfig()
    model, disc = Tokenizer(mc), PatchDiscriminator()
    opt_g = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=tc.lr, betas=(0.5, 0.9))
    data = CropDataset(Path(tc.data), tc.crop, seed=tc.seed)
    restarter = DeadCodeRestarter(mc.depth, mc.codebook_size, mc.code_dim)
    modules = {"model": model, "disc": disc, "restarter": restarter}
    step, wall = 0, 0.0
    if ckpt.with_suffix(".json").exists():
        meta = load_checkpoint(ckpt, modules, {"g": opt_g, "d": opt_d}, optional=("restarter",))
        step, wall = meta["step"], meta["wall_seconds"]
        data.rng.bit_generator.state = meta["data_rng"]
    else:
        kmeans_init(model, data, batches=8)
    if tc.freeze_encoder:
        model.encoder.requires_grad_(False)
        model.quantizer.requires_grad_(False)
    lpips_model = load_lpips() if tc.lpips_weight else None
    log = (out / "tokenizer_log.jsonl").open("a")
    t_start, first_step = time.time() - wall, step
    bar = tqdm(total=tc.steps, initial=step, desc="tokenizer")
    while step < tc.steps:
        lr = tc.lr * min(1.0, (step + 1) / tc.warmup)
        for g in opt_g.param_groups + opt_d.param_groups:
            g["lr"] = lr
        x = data.batch(tc.batch)
        quality = torch.randint(1, mc.depth + 1, (tc.batch,))
        quality[0] = mc.depth  # one full-depth sample per batch keeps the top level trained
        o = model(x, quality)
        rec = o["recon"]
        l1 = (rec - x).abs().mean()
        perceptual = lpips_model(rec, x).mean() if lpips_model else torch.zeros(())
        rec_loss = l1 + tc.lpips_weight * perceptual
        loss = rec_loss + o["vq_loss"]
        gan_on = step >= tc.disc_start
        stats = {"l1": l1.item(), "lpips": perceptual.item(), "vq": o["vq_loss"].item()}
        if gan_on:
            g_loss = -disc(rec).mean()
            lam = adaptive_gan_weight(rec_loss, g_loss, model.decoder.last.weight, tc.disc_weight)
            loss = loss + lam * g_loss
            stats.update(g=g_loss.item(), lam=lam.item())
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        if gan_on:
            d_loss = hinge_d_loss(disc(x), disc(rec.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            stats["d"] = d_loss.item()
        restarter.observe(o["indices"], o["residuals"])
        step += 1
        if step % tc.restart_every == 0 and not tc.freeze_encoder:
            stats["restarted"] = restarter.restart(model.quantizer.codebooks)
        bar.update(1)
        bar.set_postfix(l1=f"{stats['l1']:.3f}", lpips=f"{stats['lpips']:.3f}")
        if (step % tc.log_every == 0 or "restarted" in stats):
            log.write(json.dumps({"step": step, "time": round(time.time() - t_start, 1), **stats}) + "\n")
            log.flush()
        out_of_time = bool(tc.minutes and time.time() - t_start > tc.minutes * 60
                           or tc.stop_after and step - first_step >= tc.stop_after)
        if (step % tc.ckpt_every == 0 or step == tc.steps or out_of_time):
            save_checkpoint(ckpt, modules, {"g": opt_g, "d": opt_d},
                            {"step": step, "wall_seconds": time.time() - t_start, "model": mc.to_dict(),
                             "train": asdict(tc), "data_rng": data.rng.bit_generator.state})
        if out_of_time:
            break
    bar.close()
    return ckpt

