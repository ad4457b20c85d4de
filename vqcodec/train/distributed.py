"""Data-parallel training under torchrun: one process per device, gloo on CPUs, nccl on GPUs.

    torchrun --nproc_per_node 2 -m vqcodec.cli train tokenizer DATA --run RUN ...

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for one process.
"""
from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist


def setup(device_type: str = "cpu") -> tuple[int, int, torch.device]:
    """(rank, world size, device) of this process on `device_type` ("cpu" or "cuda": under torchrun, the
    GPU of this process's local rank); joins torchrun's process group if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = device_type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ValueError("device cuda: no CUDA device is available here")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if world == 1:
        return 0, 1, device
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def broadcast_(tensor: torch.Tensor, world: int) -> None:
    """Make every rank's tensor equal to rank 0's."""
    if world > 1:
        dist.broadcast(tensor, 0)


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank if it is true on any."""
    if world == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, dist.ReduceOp.MAX)
    return bool(t.item())


def replica_digests(module: torch.nn.Module, world: int) -> list[str]:
    """SHA-256 (first 16 hex digits) of the module's parameters on every rank, in rank order: replicas
    that drifted apart show different digests."""
    h = hashlib.sha256()
    for p in module.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    mine = h.hexdigest()[:16]
    if world == 1:
        return [mine]
    digests: list = [None] * world
    dist.all_gather_object(digests, mine)
    return digests
