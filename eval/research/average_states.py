"""Average the weights of copies of one run's lasting state taken at several steps into one state
(Polyak averaging of checkpoints). At a constant or slowly falling learning rate the held-out scores
move from one checkpoint to the next by more than the run improves; the average keeps what they share.
Scores the average on the held-out pictures of the training folder, never Kodak.

    python eval/research/average_states.py /work/runs/keep/5{5,6,7,8}000 --out /work/runs/avg \
        --data ../shared/data/train --json eval/results/average_states.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from vqcodec.families import read_tokenizer, state_tensors
from vqcodec.metrics import load_lpips
from vqcodec.train import state as lasting
from vqcodec.train.heldout import held_out_pictures, score


def average_states(states: list[Path], out: Path) -> dict:
    """Write the mean of the states' weights (fp16, as a state holds them) and the newest state's record,
    marked with the steps it averages, into `out`; returns that record."""
    records = [lasting.read_record(s) for s in states]
    if any(r["model"] != records[0]["model"] or r["modules"] != records[0]["modules"] for r in records):
        raise SystemExit("the states are not of one model: their configs or modules differ")
    out.mkdir(parents=True, exist_ok=True)
    for module in records[0]["modules"]:
        tensors = [state_tensors(s, r, module) for s, r in zip(states, records)]
        mean = {k: (torch.stack([t[k].float() for t in tensors]).mean(0).to(tensors[0][k].dtype)
                    if tensors[0][k].is_floating_point() else tensors[-1][k]) for k in tensors[0]}
        save_file(mean, str(out / f"{module}.safetensors"))
    newest = max(records, key=lambda r: r["step"])
    record = {**newest, "averaged_steps": sorted(r["step"] for r in records),
              "files": {module: [f"{module}.safetensors"] for module in records[0]["modules"]}}
    (out / lasting.STATE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("states", type=Path, nargs="+", help="copies of the lasting state at several steps")
    parser.add_argument("--out", type=Path, required=True, help="folder for the averaged state")
    parser.add_argument("--data", type=Path, help="the training folder: score the average on its held-out pictures")
    parser.add_argument("--json", type=Path, help="write the scores here")
    args = parser.parse_args()
    record = average_states(args.states, args.out)
    print(f"{args.out}: the mean of steps {', '.join(map(str, record['averaged_steps']))}")
    if not args.data:
        return
    tokenizer, _ = read_tokenizer(args.out)
    levels = score(tokenizer, held_out_pictures(args.data), load_lpips())
    for row in levels:
        print(f"level {row['quality']}: PSNR {row['psnr']:.2f} dB  MS-SSIM {row['ms_ssim']:.4f}  LPIPS {row['lpips']:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"averaged_steps": record["averaged_steps"], "levels": levels}, indent=1) + "\n")


if __name__ == "__main__":
    main()
