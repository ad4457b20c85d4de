"""The largest batch of training crops whose tokenizer step fits on this GPU (powers of two), for
eval/gpu/gpu_run.sh: one generator step with LPIPS under bf16 autocast per size, peak memory at most 85 %
of the card's. Prints the batch; prints 8 where there is no GPU.

    python eval/gpu/gpu_batch.py eval/runs/vqgan-f16
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vqcodec.metrics import load_lpips
from vqcodec.families import build_tokenizer
from vqcodec.tokenizer import Tokenizer
from vqcodec.train.state import read_record


def fits(model: Tokenizer, lpips_model: torch.nn.Module, batch: int, crop: int) -> bool:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        x = torch.rand(batch, 3, crop, crop, device="cuda") * 2 - 1
        quality = torch.full((batch,), model.cfg.depth, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            o = model(x, quality)
            loss = (o["recon"].float() - x).abs().mean() + lpips_model(o["recon"].float(), x).mean()
        loss.backward()
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
    return torch.cuda.max_memory_allocated() < 0.85 * torch.cuda.get_device_properties(0).total_memory


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("state", type=Path)
    ap.add_argument("--largest", type=int, default=1024)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(8)
        return
    record = read_record(args.state)
    model = build_tokenizer(record["model"]).cuda()
    lpips_model = load_lpips().cuda()
    batch = 8
    while batch * 2 <= args.largest and fits(model, lpips_model, batch * 2, record["train"]["crop"]):
        batch *= 2
    print(batch)


if __name__ == "__main__":
    main()
