"""Probe: vqc-v6's codes decoded through taef2's pretrained decoder (../shared/weights/taef2, MIT).

A learned synthesis turns the f16 codes (summed over the kept depths) into taef2's f8 latent; taef2's
decoder, frozen, turns that into pixels. Trained with L1 + LPIPS in pixel space through the frozen
decoder, plus taef2's own encoding of the crop as a latent target that guides the synthesis early (latent
MSE alone gives blur: ../shared/DESIGN.md's dead ends). The tokenizer is frozen, so grids and prior stay
valid. The learning rate follows a cosine over the CPU-time budget, so probes compare at equal CPU time.

    python eval/research/taef2_probe.py eval/runs/vqgan-f16 ../shared/data/train /work/probes/p2 --cpu-minutes 45
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from vqcodec.families import read_tokenizer
from vqcodec.metrics import load_lpips
from vqcodec.tokenizer import AttnBlock, ResBlock, Tokenizer, _norm
from vqcodec.train.data import CropDataset

TAEF2 = Path(__file__).resolve().parents[3] / "shared" / "weights" / "taef2"


class TaeBlock(nn.Module):
    """Three 3x3 convs with ReLUs, a residual add, a ReLU; the deepest blocks first add a 1x1 bottleneck
    branch with GroupNorm (the layout SOURCE.txt gives)."""

    def __init__(self, c: int = 64, branch: bool = False):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1))
        self.pool = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.GroupNorm(4, 4 * c), nn.ReLU(),
                                  nn.Conv2d(4 * c, c, 1, bias=False)) if branch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return F.relu(self.conv(x) + x)


class SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def taef2_encoder() -> nn.Sequential:  # (B, 3, H, W) in [0, 1] -> (B, 32, H/8, W/8)
    down = lambda: nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)  # noqa: E731
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), TaeBlock(), down(), *[TaeBlock() for _ in range(3)], down(),
                         *[TaeBlock() for _ in range(3)], down(), *[TaeBlock(branch=True) for _ in range(3)],
                         nn.Conv2d(64, 32, 3, padding=1))


def taef2_decoder() -> nn.Sequential:  # (B, 32, h, w) -> (B, 3, 8h, 8w) in about [0, 1]
    up = lambda: [nn.Upsample(scale_factor=2), nn.Conv2d(64, 64, 3, padding=1, bias=False)]  # noqa: E731
    return nn.Sequential(SoftClamp(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         *[TaeBlock(branch=True) for _ in range(3)], *up(), *[TaeBlock() for _ in range(3)], *up(),
                         *[TaeBlock() for _ in range(3)], *up(), TaeBlock(), nn.Conv2d(64, 3, 3, padding=1))


def load_taef2(part: str) -> nn.Sequential:
    net = taef2_encoder() if part == "encoder" else taef2_decoder()
    net.load_state_dict({k: v.float() for k, v in load_file(str(TAEF2 / f"taef2_{part}.safetensors")).items()})
    return net.eval().requires_grad_(False)


class Synthesis(nn.Module):
    """f16 codes (B, D, h, w) -> taef2 latent (B, 32, 2h, 2w)."""

    def __init__(self, code_dim: int, c: int = 256):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(code_dim, c, 3, padding=1), ResBlock(c, c), AttnBlock(c), ResBlock(c, c),
                                  nn.Upsample(scale_factor=2), nn.Conv2d(c, c // 2, 3, padding=1),
                                  ResBlock(c // 2, c // 2), ResBlock(c // 2, c // 2), _norm(c // 2), nn.SiLU(),
                                  nn.Conv2d(c // 2, 32, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class Taef2Decoding(nn.Module):
    """Summed codes -> pixels in [-1, 1] through the synthesis and taef2's frozen decoder."""

    def __init__(self, code_dim: int):
        super().__init__()
        self.synthesis = Synthesis(code_dim)
        self.taef2 = load_taef2("decoder")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.taef2(self.synthesis(z)) * 2 - 1


def frozen_tokenizer(folder: Path) -> Tokenizer:
    return read_tokenizer(folder)[0].eval().requires_grad_(False)


def summed_codes(tok: Tokenizer, x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w): each sample's codes summed over its first quality[b] depths."""
    _, codes, _ = tok.quantizer.quantize(tok.encoder(x))
    keep = (torch.arange(tok.cfg.depth)[None] < quality[:, None]).float()
    return (codes * keep[:, :, None, None, None]).sum(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tokenizer", type=Path, help="model folder or lasting state whose encoder and codebooks are kept")
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cpu-minutes", type=float, default=45.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--latent-weight", type=float, default=0.25)
    ap.add_argument("--init", type=Path, help="a synthesis.safetensors to continue from (a warm restart)")
    ap.add_argument("--seed", type=int, default=0, help="crop stream; give a new one when continuing with --init")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    tok, enc = frozen_tokenizer(args.tokenizer), load_taef2("encoder")
    model, lpips_model = Taef2Decoding(tok.cfg.code_dim), load_lpips()
    if args.init:
        model.synthesis.load_state_dict(load_file(str(args.init)))
    opt = torch.optim.Adam(model.synthesis.parameters(), lr=args.lr, betas=(0.5, 0.9))
    data = CropDataset(args.data, 128, seed=args.seed, held_out_every=20)
    for _ in range(8):  # the crops the tokenizer runs spend on k-means: every probe then sees the same crops
        data.batch(8)
    budget, start, step, log = args.cpu_minutes * 60, time.process_time(), 0, []
    bar = tqdm(desc="taef2 probe", unit="step", file=sys.stderr)
    while (used := time.process_time() - start) < budget:
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * used / budget))
        for g in opt.param_groups:
            g["lr"] = lr
        x = data.batch(8)
        quality = torch.randint(1, tok.cfg.depth + 1, (8,))
        quality[0] = tok.cfg.depth
        with torch.no_grad():
            z, target = summed_codes(tok, x, quality), enc((x + 1) / 2)
        latent = model.synthesis(z)
        rec = model.taef2(latent) * 2 - 1
        l1, perceptual = (rec - x).abs().mean(), lpips_model(rec, x).mean()
        latent_mse = F.mse_loss(latent, target)
        loss = l1 + perceptual + args.latent_weight * latent_mse
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(l1=f"{l1.item():.3f}", lpips=f"{perceptual.item():.3f}", lat=f"{latent_mse.item():.3f}")
        if step % 10 == 0:
            log.append({"step": step, "cpu": round(used, 1), "l1": l1.item(), "lpips": perceptual.item(),
                        "latent_mse": latent_mse.item(), "lr": lr})
        if step % 100 == 0 or time.process_time() - start >= budget:
            args.out.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in model.synthesis.state_dict().items()},
                      str(args.out / "synthesis.safetensors"))
            (args.out / "record.json").write_text(json.dumps(
                {"steps": step, "cpu_seconds": round(time.process_time() - start, 1), "tokenizer": str(args.tokenizer),
                 "args": {k: str(v) for k, v in vars(args).items()}, "log": log}, indent=1))


if __name__ == "__main__":
    main()
