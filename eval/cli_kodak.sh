#!/usr/bin/env bash
# The command-line round trip on every Kodak image at the default quality:
#   bash eval/cli_kodak.sh ../shared/data/kodak > eval/results/MODEL_cli_kodak.txt
set -euo pipefail
kodak=${1:?usage: cli_kodak.sh KODAK_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok=0
for png in "$kodak"/*.png; do
  name=$(basename "$png" .png)
  vqcodec compress "$png" "$tmp/$name.vqc" >/dev/null
  vqcodec decompress "$tmp/$name.vqc" "$tmp/$name.png" >/dev/null
  size=$(python -c "from PIL import Image; print('%dx%d' % Image.open('$tmp/$name.png').size)")
  echo "$name $(stat -c %s "$tmp/$name.vqc") bytes, decoded $size"
  ok=$((ok + 1))
done
echo "$ok images compressed and decompressed through the CLI"
