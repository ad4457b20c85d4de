"""Training the fine grid's prior (fineprior.py) on the grids a frozen hierarchy (hierarchy.py) gives the
training pictures, with the run kept as a lasting state (state.py) and scored in bits per index on each
folder's held-out pictures.

    python -m vqcodec.train.fineprior eval/runs/vqgan-f16-f8 ../shared/data/train ../shared/data/train_extra \
        --state eval/runs/vqgan-f16-f8-prior --cache /tmp/fine_grids --cpu-minutes 60
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..fineprior import FinePrior, FinePriorConfig
from ..hierarchy import Hierarchy, read_hierarchy
from ..images import image_files, to_rgb
from ..tokenizer import to_unit_range
from .heldout import held_out_pictures, is_held_out, whole_tokens
from .state import has_state, load_state, read_record, save_state

Grids = list[tuple[np.ndarray, np.ndarray]]  # (coarse (L, h, w), fine (depth, 2h, 2w)) int16 per picture


def prior_config(model: Hierarchy, width: int, layers: int) -> FinePriorConfig:
    """The fine prior's layout for a hierarchy's grids."""
    return FinePriorConfig(model.tok.cfg.codebook_size, model.fine.cfg.coarse_levels, model.fine.cfg.codebook_size,
                           model.fine.cfg.depth, width, layers)


@torch.no_grad()
def encode_pictures(model: Hierarchy, pictures: list[np.ndarray], desc: str) -> Grids:
    out = []
    for rgb in tqdm(pictures, desc=desc, file=sys.stderr, leave=False):
        coarse, fine = model.encode(to_unit_range(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]))
        out.append((coarse[0].numpy().astype(np.int16), fine[0].numpy().astype(np.int16)))
    return out


def training_crops(folder: Path, side: int, seed: int) -> list[np.ndarray]:
    """One random side x side crop of each training picture of a folder (the held-out ones left out);
    smaller pictures are upscaled to fit, as the tokenizer's training crops are."""
    rng = np.random.default_rng(seed)
    crops = []
    for k, path in enumerate(image_files(folder)):
        if is_held_out(k):
            continue
        a = to_rgb(path, colour_manage=False)
        if min(a.shape[:2]) < side:
            im, s = Image.fromarray(a), side / min(a.shape[:2])
            a = np.asarray(im.resize((max(side, round(im.width * s)), max(side, round(im.height * s))), Image.BICUBIC))
        y, x = rng.integers(a.shape[0] - side + 1), rng.integers(a.shape[1] - side + 1)
        crops.append(a[y:y + side, x:x + side])
    return crops


def grid_cache(model: Hierarchy, folders: list[Path], cache: Path, side: int = 256) -> Grids:
    """The grids of one crop of every training picture, computed once per hierarchy (the cache file is
    named by a digest of its weights) and kept in `cache`, a scratch folder."""
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:12]
    path = cache / f"fine_grids_{digest}_{side}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return [(z[f"c{i}"], z[f"f{i}"]) for i in range(len(z.files) // 2)]
    grids = [g for k, folder in enumerate(folders)
             for g in encode_pictures(model, training_crops(folder, side, seed=k), f"grids of {folder.name}")]
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **{f"{kind}{i}": g for i, pair in enumerate(grids) for kind, g in zip("cf", pair)})
    tmp.replace(path)
    return grids


def sample(grids: Grids, n: int, side: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n random crops of side x side coarse positions: (coarse (n, L, side, side), fine (n, depth, 2 side, 2 side))."""
    coarse, fine = [], []
    for _ in range(n):
        c, f = grids[rng.integers(len(grids))]
        y, x = rng.integers(c.shape[1] - side + 1), rng.integers(c.shape[2] - side + 1)
        coarse.append(c[:, y:y + side, x:x + side])
        fine.append(f[:, 2 * y:2 * (y + side), 2 * x:2 * (x + side)])
    return torch.from_numpy(np.stack(coarse).astype(np.int64)), torch.from_numpy(np.stack(fine).astype(np.int64))


@torch.no_grad()
def heldout_bits(prior: FinePrior, grids: Grids) -> list[float]:
    """Bits per index of each fine depth over whole held-out pictures (none: [])."""
    if not grids:
        return []
    prior.eval()
    total, positions = 0.0, 0
    for c, f in grids:
        n = f[0].size
        total = total + prior.bits(torch.from_numpy(c[None].astype(np.int64)),
                                   torch.from_numpy(f[None].astype(np.int64))) * n
        positions += n
    prior.train()
    return [round(b, 4) for b in (total / positions).tolist()]


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    model, hierarchy_record = read_hierarchy(args.hierarchy)
    model.requires_grad_(False)
    record = read_record(args.state) if args.state and has_state(args.state) else {}
    cfg = FinePriorConfig.from_dict(record["prior"]) if record else prior_config(model, args.width, args.layers)
    prior = FinePrior(cfg)
    if record:
        load_state(args.state, {"prior": prior})
    grids = grid_cache(model, args.data, args.cache)
    held = {folder.name: encode_pictures(model, [whole_tokens(a, model.tok) for a in held_out_pictures(folder)],
                                         f"held-out grids of {folder.name}") for folder in args.data}
    opt = torch.optim.Adam(prior.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    budget, start, step = args.cpu_minutes * 60, time.process_time(), 0
    done_step, done_cpu = record.get("step", 0), record.get("cpu_seconds", 0.0)
    log = record.get("log", [])
    source = {"state": str(args.hierarchy), "step": hierarchy_record.get("step")}

    def save() -> None:
        bits = {name: heldout_bits(prior, g) for name, g in held.items()}
        cpu = round(done_cpu + time.process_time() - start, 1)
        log.append({"step": done_step + step, "cpu": cpu, "heldout_bits": bits})
        print(f"step {done_step + step}, {cpu} CPU-s: held-out bits per index {bits}", file=sys.stderr, flush=True)
        save_state(args.state, {"prior": prior}, {
            "step": done_step + step, "cpu_seconds": cpu, "prior": cfg.to_dict(),
            "hierarchies": record.get("hierarchies", []) + ([] if source in record.get("hierarchies", []) else [source]),
            "data": [str(f) for f in args.data], "log": log})

    bar = tqdm(desc="fine prior", unit="step", file=sys.stderr, disable=args.quiet)
    prior.train()
    while (used := time.process_time() - start) < budget:
        scale = min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * used / budget))
        for g in opt.param_groups:
            g["lr"] = args.lr * scale
        coarse, fine = sample(grids, args.batch, args.crop, rng)
        bits = prior.bits(coarse, fine)
        opt.zero_grad(set_to_none=True)
        bits.sum().backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(bits=" ".join(f"{b:.2f}" for b in bits.tolist()))
        if step % args.save_every == 0:
            save()
    bar.close()
    save()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hierarchy", type=Path, help="the hierarchy's lasting state (its grids are what the prior codes)")
    ap.add_argument("data", type=Path, nargs="+", help="training folders (each keeps its own held-out pictures)")
    ap.add_argument("--state", type=Path, required=True, help="the prior's lasting state, resumed when it exists")
    ap.add_argument("--cache", type=Path, required=True, help="a scratch folder for the training pictures' grids")
    ap.add_argument("--cpu-minutes", type=float, default=60.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=12, help="coarse positions a side of a training crop")
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    train(ap.parse_args(argv))


if __name__ == "__main__":
    main()
