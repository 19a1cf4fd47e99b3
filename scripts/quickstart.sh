#!/usr/bin/env bash
# The main job end to end on the embedded toy world, on a fresh machine:
# environment + install, toy world, guide and judge segmenters, crop classifier,
# a short semguard training run, and the flip report.
# Usage: bash scripts/quickstart.sh        (STEPS=..., OUT=..., VENV=... to change)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-runs/quickstart}"
STEPS="${STEPS:-300}"          # translator steps (the benchmark trains longer)
SIZE="${SIZE:-64x128}"         # toy frame size; 128x256 looks nicer and costs 4x
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet -e .
sg() { echo "+ semguard $*"; "$VENV/bin/semguard" "$@"; }

sg data make-toy --out "$OUT/toy" --train 300 --val 64 --judge 300 --size "$SIZE" --seed 0 --workers 2 --overwrite
sg data preview "$OUT/toy" --out "$OUT/toy_preview.png"
# the guides learn the real labels on real images (fpn seed 2, linknet seed 5, deeplabv3plus seed 11); the judge learns the toy world's own judge
# split (fresh real and sim layouts in the real style) and records its floor on the paired truth
sg segmenter train --role guide --data "$OUT/toy/real/train" --val "$OUT/toy/real/val" --out "$OUT/guide_real.pt" --arch fpn --seed 2 --steps 300 --crop "$SIZE" --quiet
# two more guides of other architectures (linknet seed 5, deeplabv3plus seed 11): per pixel the worst of the three readings counts
sg segmenter train --role guide --data "$OUT/toy/real/train" --val "$OUT/toy/real/val" --out "$OUT/guide_linknet.pt" --arch linknet --seed 5 --steps 300 --crop "$SIZE" --quiet
sg segmenter train --role guide --data "$OUT/toy/real/train" --val "$OUT/toy/real/val" --out "$OUT/guide_deeplab.pt" --arch deeplabv3plus --seed 11 --steps 300 --crop "$SIZE" --quiet
sg segmenter train --role judge --data "$OUT/toy/judge/train" --val "$OUT/toy/real/val" --floor-data "$OUT/toy/paired/val" --out "$OUT/judge.pt" --steps 600 --seed 7 --crop "$SIZE" --quiet
sg segmenter train-crops --data "$OUT/toy/real/train" --val "$OUT/toy/real/val" --out "$OUT/crops.pt" --epochs 10 --quiet
sg train --config configs/toy.yaml \
  --set data.source="$OUT/toy/sim/train" --set data.target="$OUT/toy/real/train" \
  --set guide.checkpoint="$OUT/guide_real.pt" --set guide.ensemble="[$OUT/guide_linknet.pt,$OUT/guide_deeplab.pt]" --set train.out="$OUT/semguard" --set train.steps="$STEPS" \
  --set data.crop="[${SIZE%x*},${SIZE#*x}]" --set train.sample_every=100 --resume
sg eval --checkpoint "$OUT/semguard/final.pt" --data "$OUT/toy" --judge "$OUT/judge.pt" \
  --crop-classifier "$OUT/crops.pt" --flip-report --out "$OUT/report"
echo "done: report in $OUT/report (report.md, report.json, pictures)"
