#!/usr/bin/env bash
# One stretch of a lasting run on a lent GPU machine: resume STATE from a copy in OUT/state, train for
# MINUTES of wall time in all (the start included), and leave the new state there (at most 8 files of at
# most 16 MiB), to be copied back over STATE and committed. Needs no network: packages missing there are
# installed from KIT/wheels, and the crops are KIT/crops (eval/gpu/gpu_kit.sh makes the kit here).
#
# A hierarchy's state (eval/runs/vqgan-f16-f8, the default) trains its fine side (`vqcodec train
# hierarchy`, fp32, batch 32 unless --batch): its learning rate falls along a cosine over the stretch.
# A tokenizer's state trains under bf16 autocast at the largest batch that fits; --anneal A spends the
# last A of its minutes lowering the learning rate along a cosine to 0 (a second stretch, its steps
# taken from the first one's rate). --device cpu runs either on the CPU (fp32, batch 8), which is how
# CI tests it.
#
#   eval/gpu/gpu_run.sh "$OUT" --minutes 9                       # on the GPU machine, from the repository root
#   eval/gpu/gpu_run.sh /tmp/out --device cpu --minutes 0.2      # here
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: eval/gpu/gpu_run.sh OUT [--minutes M] [--state DIR] [--kit DIR] [--device cuda|cpu] [--batch N] [--lr LR] [--anneal A]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
out=$1; shift
minutes=9 state=eval/runs/vqgan-f16-f8 kit=eval/gpu_kit device=cuda batch="" lr="" anneal=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=$2 ;; --state) state=$2 ;; --kit) kit=$2 ;; --device) device=$2 ;;
    --batch) batch=$2 ;; --lr) lr=$2 ;; --anneal) anneal=$2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  shift 2
done
[ -f "$state/state.json" ] || { echo "Error: $state holds no run state (state.json)" >&2; exit 1; }
ls "$kit"/crops/crops-*.npz > /dev/null 2>&1 || { echo "Error: no crop packs in $kit/crops" >&2; exit 1; }

# Packages this machine lacks, from the wheels beside the kit (no index, no network).
source eval/gpu/kit_packages.sh
kit_packages "$kit" constriction:constriction lpips:lpips numpy:numpy pillow:PIL click:click safetensors:safetensors \
  tqdm:tqdm
if [ "$device" = cpu ]; then
  export CUDA_VISIBLE_DEVICES=""
  precision=fp32
else
  python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || { echo "Error: no GPU here (--device cpu?)" >&2; exit 1; }
  precision=bf16
fi

mkdir -p "$out/state"
cp "$state"/state.json "$state"/*.safetensors "$out/state/"
[ -f "$state/log.jsonl" ] && cp "$state/log.jsonl" "$out/state/"
if python3 -c "import json, sys; sys.exit('fine' not in json.load(open('$out/state/state.json')))"; then
  left=$(python3 -c "print(max(0.05, $minutes - $SECONDS / 60 - 0.3))")
  echo "hierarchy: batch ${batch:-32}, $left minutes of training" >&2
  python3 -m vqcodec train hierarchy "$kit/crops" --resume "$out/state" --minutes "$left" --device "$device" \
    --batch "${batch:-32}" ${lr:+--lr "$lr"}
  ls -l "$out/state" >&2
  exit 0
fi
[ -n "$batch" ] || batch=$(python3 eval/gpu/gpu_batch.py "$out/state")
# What is left of the budget, less a reserve for each stretch's last checkpoint and the anneal's start.
left=$(python3 -c "print(max(0.05, $minutes - $SECONDS / 60 - 0.3 - $anneal * 1.1))")
echo "batch $batch, $precision, $left minutes of training, then $anneal annealing" >&2
train() {
  python3 -m vqcodec train tokenizer "$kit/crops" --resume "$out/state" --batch "$batch" --precision "$precision" \
    --device "$device" \
    --eval-every 0 ${lr:+--lr "$lr"} "$@"
}
train --stretch-minutes "$left"
if python3 -c "import sys; sys.exit(not $anneal > 0)"; then
  # As many steps as the first stretch's rate fits into the anneal's minutes; the schedule ends there.
  read -r from to < <(python3 - "$out/state" "$anneal" <<'PY'
import json, sys
from pathlib import Path
record = json.loads((Path(sys.argv[1]) / "state.json").read_text())
last = record["stretches"][-1]
rate = (last["to_step"] - last["from_step"]) / max(last["wall_seconds"], 1.0)
print(record["step"], record["step"] + max(1, int(rate * float(sys.argv[2]) * 60)))
PY
)
  echo "annealing from step $from to $to" >&2
  train --steps "$to" --decay-from "$from" --stretch-minutes "$(python3 -c "print($anneal * 1.5)")"
fi
python3 - "$out/state" <<'PY'
import json, sys
from pathlib import Path
folder = Path(sys.argv[1])
record = json.loads((folder / "state.json").read_text())
files = sorted(folder.iterdir())
print(f"step {record['step']}, train_pixels {record['train_pixels']:,}; files: "
      + ", ".join(f"{p.name} {p.stat().st_size:,} B" for p in files))
PY
