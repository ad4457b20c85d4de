#!/usr/bin/env bash
# Make the kit eval/gpu/gpu_run.sh and gpu_check.sh take to a machine with no network: crop packs from the
# training photos of one or more folders joined by ':' (never a folder's held-out ones) and the wheels of what such a machine may lack beside torch,
# for Python 3.12 (the versions installed here).
#
#   eval/gpu/gpu_kit.sh ../shared/data/train:../shared/data/train_extra [eval/gpu_kit] [MEGABYTES of crops]
set -euo pipefail
cd "$(dirname "$0")/../.."
train=$1 kit=${2:-eval/gpu_kit} megabytes=${3:-32}
python eval/gpu/pack_crops.py "$train" "$kit/crops" --megabytes "$megabytes"
mkdir -p "$kit/wheels"
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$kit/wheels" lpips==0.1.4 $(python - <<'PY'
import importlib.metadata as m
print(" ".join(f"{p}=={m.version(p)}" for p in ("constriction", "numpy", "pillow", "click", "safetensors", "tqdm")))
PY
)
du -sh "$kit"
