#!/usr/bin/env bash
# The GPU path checked on a bare machine with an NVIDIA GPU, Python 3 and torch but no network: what it
# lacks comes from KIT/wheels (eval/gpu/gpu_kit.sh), vqcodec runs from this checkout, and
# eval/gpu/gpu_check.py decodes every reference vector on the GPU and codes IMAGES on the GPU and the CPU
# across, timing both; its table lands in OUT. --device cpu runs the same here (CI, a few small pictures).
#
#   eval/gpu/gpu_check.sh "$OUT" --images eval/gpu_kit/kodak                  # on the GPU machine
#   eval/gpu/gpu_check.sh /tmp/out --device cpu --images DIR --limit 1 --vectors 'chelsea-odd*'
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: eval/gpu/gpu_check.sh OUT --images DIR [--kit DIR] [gpu_check.py options]" >&2; exit 2; }
out=$1; shift
kit=eval/gpu_kit args=()
while [ $# -gt 0 ]; do
  case $1 in
    --kit) kit=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
source eval/gpu/kit_packages.sh
kit_packages "$kit" constriction:constriction numpy:numpy pillow:PIL click:click safetensors:safetensors tqdm:tqdm
python3 eval/gpu/gpu_check.py "$out" "${args[@]}"
