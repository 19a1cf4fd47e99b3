#!/usr/bin/env bash
# semguard's CUDA path end to end, in one run that fits about 8 minutes on one GPU, so that
# whoever has a GPU at hand only has to run it and commit what it wrote:
#   1. a small toy world (and one large frame: 2048x1024 on CUDA);
#   2. the guide segmenters, then configs/toy.yaml (semguard) and configs/toy_cut.yaml (CUT) a few
#      hundred steps each, with bf16 autocast and every network channels-last on CUDA;
#   3. the large frame translated whole (--tile 0) and tiled (--tile N), and the two compared;
#   4. the translator exported to ONNX and run in onnxruntime (the CUDA provider on CUDA, when this
#      onnxruntime has it: the plain `onnxruntime` package has not, `onnxruntime-gpu` has) and on
#      the CPU provider, each compared with `semguard translate`'s own output;
#   5. benchmarks/bench_train_step.py and benchmarks/bench_translate.py with --device.
# Every log, table and figure goes under --out (summary.md lists them with each stage's time); the
# bulky work (data, checkpoints, translations, the ONNX graph) under --out/work, which a .gitignore
# there keeps out of git, so `git add OUT` commits the figures alone. It installs nothing: run it in
# the environment `bash scripts/test.sh` made (semguard with its export extra).
#
# Usage: bash scripts/gpu_check.sh [--device cuda|cpu] [--out DIR] [--quick]
#   --device  cuda (default) or cpu
#   --out     output folder (default runs/gpu_check_DEVICE); replaced if it holds an earlier check
#   --quick   toy sizes (64x128 world, a few steps, a 256x512 large frame): the CPU smoke test,
#             a few minutes on two cores (GPU_CHECK_QUICK=1 does the same)
# Environment: VENV (default .venv), STAGE_TIMEOUT (seconds a stage may take, default 600).
# A failed stage stops the check with one line naming the stage and its log; the exit status is 1.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda
OUT=""
QUICK="${GPU_CHECK_QUICK:-0}"
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="${2:?--device needs cuda or cpu}"; shift 2 ;;
        --device=*) DEVICE="${1#*=}"; shift ;;
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument '$1' (use --device cuda|cpu, --out DIR, --quick)" >&2; exit 2 ;;
    esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_check: --device must be cuda or cpu, not '$DEVICE'" >&2; exit 2 ;; esac
OUT="${OUT:-runs/gpu_check_$DEVICE}"
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
SG="$VENV/bin/semguard"
STAGE_TIMEOUT="${STAGE_TIMEOUT:-600}"
STAGE=setup
trap 'echo "gpu_check: FAILED at stage $STAGE (line $LINENO)" >&2' ERR

if [ ! -x "$SG" ]; then
    echo "gpu_check: FAILED at stage setup: $SG not found; install first with: bash scripts/test.sh" >&2
    exit 1
fi
if [ -e "$OUT" ] && ! head -n 1 "$OUT/summary.md" 2>/dev/null | grep -q '^# gpu_check'; then
    echo "gpu_check: FAILED at stage setup: $OUT exists and is not an earlier gpu_check output; choose another --out" >&2
    exit 1
fi
rm -rf "$OUT"
WORK="$OUT/work"
mkdir -p "$OUT/logs" "$WORK/onnx"
printf 'work/\n' > "$OUT/.gitignore"

if [ "$QUICK" = "1" ]; then
    TOY_SIZE=64x128; TOY_H=64; TOY_W=128; TRAIN_FRAMES=24; VAL_FRAMES=4
    GUIDE_STEPS=10; STEPS=10
    BIG_SIZE=256x512; TILE=128
    BENCH_STEP_ARGS=(--steps 1 --batch-size 2 --sizes 64x128 --rows semguard,resnet-cut)
    BENCH_TRANSLATE_ARGS=(--sizes 64x128 --frames 2 --base-channels 8 --skip-memory)
    ORT_RUNS=1
else
    TOY_SIZE=128x256; TOY_H=128; TOY_W=256; TRAIN_FRAMES=300; VAL_FRAMES=32
    GUIDE_STEPS=300; STEPS=300
    BIG_SIZE=1024x2048; TILE=512
    BENCH_STEP_ARGS=(--steps 5 --batch-size 2 --sizes 128x256,256x512
                     --rows semguard,semguard-fp32,resnet-cut,resnet-cut-fp32)
    BENCH_TRANSLATE_ARGS=(--sizes 526x957,1024x2048 --frames 4 --memory-passes 2)
    ORT_RUNS=3
fi

SUMMARY="$OUT/summary.md"
{
    echo "# gpu_check (--device $DEVICE$([ "$QUICK" = "1" ] && echo ", --quick"))"
    echo
    echo "- command: \`bash scripts/gpu_check.sh --device $DEVICE --out $OUT$([ "$QUICK" = "1" ] && echo " --quick")\`"
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- toy world $TOY_SIZE ($TRAIN_FRAMES train / $VAL_FRAMES val frames a domain), guide $GUIDE_STEPS steps,"
    echo "  translators $STEPS steps at batch 2, large frame $BIG_SIZE (HxW) tiled at $TILE px"
    echo
    echo "| stage | seconds | log |"
    echo "|---|---:|---|"
} > "$SUMMARY"
NOTES=()

# run_stage NAME COMMAND...: runs COMMAND with its output in logs/NAME.log; a failure (or
# STAGE_TIMEOUT) stops the check with one line naming the stage.
run_stage() {
    local name="$1"; shift
    STAGE="$name"
    local log="$OUT/logs/$name.log"
    local start end
    echo "== $name"
    start=$(date +%s.%N)
    local runner=(timeout "$STAGE_TIMEOUT")
    [ "$(type -t "$1")" = "function" ] && runner=()   # the short numpy checks below: no timeout needed
    local status=0
    "${runner[@]+"${runner[@]}"}" "$@" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        local why="exit status $status"
        [ "$status" -eq 124 ] && why="timed out after ${STAGE_TIMEOUT} s (STAGE_TIMEOUT)"
        echo "---- last lines of $log:" >&2
        tail -n 25 "$log" >&2 || true
        echo "gpu_check: FAILED at stage $name: $why (log: $log)" >&2
        echo "| $name | FAILED | logs/$name.log |" >> "$SUMMARY"
        exit 1
    fi
    end=$(date +%s.%N)
    awk -v name="$name" -v s="$start" -v e="$end" 'BEGIN { printf "| %s | %.1f | logs/%s.log |\n", name, e - s, name }' >> "$SUMMARY"
}

environment() {
    "$PY" - "$DEVICE" <<'EOF'
import platform, sys
import torch
import semguard
device = sys.argv[1]
print("python", platform.python_version(), "| torch", torch.__version__, "| semguard", semguard.__version__)
print("cpu", platform.processor() or platform.machine(), "| threads", torch.get_num_threads())
try:
    import onnxruntime
    print("onnxruntime", onnxruntime.__version__, "providers", onnxruntime.get_available_providers())
except ImportError:
    print("onnxruntime: not installed (the export extra: bash scripts/test.sh)")
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("--device cuda, but torch sees no CUDA device (torch.cuda.is_available() is False)")
    print("cuda", torch.version.cuda, "| device", torch.cuda.get_device_name(0),
          "| bf16", torch.cuda.is_bf16_supported(), "| devices", torch.cuda.device_count())
EOF
}
run_stage environment environment
cp "$OUT/logs/environment.log" "$OUT/environment.txt"
if [ "$DEVICE" = "cuda" ] && command -v nvidia-smi >/dev/null; then nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true; fi

# 1. data: the toy world, and one large frame in the same world
run_stage make_toy "$SG" data make-toy --out "$WORK/toy" --train "$TRAIN_FRAMES" --val "$VAL_FRAMES" --judge 0 \
    --size "$TOY_SIZE" --seed 0 --workers 2
run_stage make_large_frame "$SG" data make-toy --out "$WORK/large" --train 1 --val 0 --judge 0 --size "$BIG_SIZE" --seed 1

# 2. guide, semguard, CUT
run_stage guide "$SG" segmenter train --role guide --data "$WORK/toy/real/train" --val "$WORK/toy/real/val" \
    --out "$WORK/guide.pt" --arch fpn --seed 2 --steps "$GUIDE_STEPS" --crop "$TOY_SIZE" --device "$DEVICE" --quiet
# the further guides configs/toy.yaml reads (as in scripts/quickstart.sh)
run_stage guide_linknet "$SG" segmenter train --role guide --data "$WORK/toy/real/train" --val "$WORK/toy/real/val" \
    --out "$WORK/guide_linknet.pt" --arch linknet --seed 5 --steps "$GUIDE_STEPS" --crop "$TOY_SIZE" --device "$DEVICE" --quiet
run_stage guide_deeplab "$SG" segmenter train --role guide --data "$WORK/toy/real/train" --val "$WORK/toy/real/val" \
    --out "$WORK/guide_deeplab.pt" --arch deeplabv3plus --seed 11 --steps "$GUIDE_STEPS" --crop "$TOY_SIZE" --device "$DEVICE" --quiet
if [ "$DEVICE" = "cuda" ]; then LAYOUT=true; else LAYOUT=auto; fi
TRAIN_SETS=(--set data.source="$WORK/toy/sim/train" --set data.target="$WORK/toy/real/train"
            --set "data.crop=[$TOY_H,$TOY_W]" --set train.steps="$STEPS" --set train.amp=true
            --set train.channels_last="$LAYOUT" --set train.sample_every="$STEPS"
            --set train.checkpoint_every="$STEPS" --set train.log_every=10)
run_stage train_semguard "$SG" train --config configs/toy.yaml "${TRAIN_SETS[@]}" \
    --set guide.checkpoint="$WORK/guide.pt" --set "guide.ensemble=[$WORK/guide_linknet.pt,$WORK/guide_deeplab.pt]" \
    --set train.out="$WORK/train/semguard" --device "$DEVICE" --no-progress
run_stage train_cut "$SG" train --config configs/toy_cut.yaml "${TRAIN_SETS[@]}" \
    --set train.out="$WORK/train/cut" --device "$DEVICE" --no-progress

train_speed() {
    "$PY" - "$OUT" <<'EOF'
import json, shutil, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
work = out / "work"
lines = ["| translator | steps | median img/s (after the first record) | final loss_g |", "|---|---:|---:|---:|"]
for name in ("semguard", "cut"):
    records = [json.loads(line) for line in (work / "train" / name / "log.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in records if "images_per_s" in r]
    if not steps:
        sys.exit(f"train/{name}/log.jsonl holds no images_per_s record")
    speeds = [r["images_per_s"] for r in steps[1:]] or [steps[0]["images_per_s"]]
    loss = steps[-1].get("terms", {}).get("loss_g", float("nan"))
    lines.append(f"| {name} | {steps[-1].get('step', '?')} | {statistics.median(speeds):.2f} | {loss:.3f} |")
    grids = sorted((work / "train" / name / "samples").glob("*.png"))
    if grids:   # the last sample grid (source | translated | label overlay) beside the figures
        shutil.copyfile(grids[-1], out / f"samples_{name}.png")
(out / "train_speed.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
}
run_stage train_speed train_speed

# 3. the large frame whole and tiled
CHECKPOINT="$WORK/train/semguard/final.pt"
run_stage translate_whole "$SG" translate --checkpoint "$CHECKPOINT" --input "$WORK/large/sim/train" \
    --out "$WORK/translate/whole" --tile 0 --device "$DEVICE" --no-progress
run_stage translate_tiled "$SG" translate --checkpoint "$CHECKPOINT" --input "$WORK/large/sim/train" \
    --out "$WORK/translate/tiled" --tile "$TILE" --device "$DEVICE" --no-progress

compare_whole_tiled() {
    "$PY" - "$OUT" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root = Path(sys.argv[1])
out = root / "work" / "translate"
names = sorted(p.relative_to(out / "whole" / "images") for p in (out / "whole" / "images").rglob("*.png"))
if not names:
    sys.exit("translate/whole/images holds no frame")
worst = 0
for name in names:
    whole = np.asarray(Image.open(out / "whole" / "images" / name), dtype=np.int16)
    tiled = np.asarray(Image.open(out / "tiled" / "images" / name), dtype=np.int16)
    if whole.shape != tiled.shape:
        sys.exit(f"{name}: whole {whole.shape} and tiled {tiled.shape} differ in size")
    diff = np.abs(whole - tiled)
    worst = max(worst, int(diff.max()))
    print(f"{name}: {whole.shape[1]}x{whole.shape[0]}, max |whole - tiled| {int(diff.max())} levels, "
          f"mean {diff.mean():.4f}, pixels differing {float((diff > 0).mean()):.4%}")
(root / "whole_vs_tiled.txt").write_text(f"max |whole - tiled| over {len(names)} frame(s): {worst} levels (8-bit)\n")
if worst > 4:   # tiles are exact (frame-wide statistics, halos): only rounding may differ
    sys.exit(f"tiled output differs from the whole frame by {worst} levels (more than 4: a seam or a tiling bug)")
EOF
}
run_stage compare_whole_tiled compare_whole_tiled

# 4. ONNX
run_stage export "$SG" export --checkpoint "$CHECKPOINT" --out "$WORK/onnx/semguard.onnx"

onnx_run() {
    "$PY" - "$OUT" "$DEVICE" "$ORT_RUNS" <<'EOF'
import json, sys, time
from pathlib import Path
import numpy as np
import onnxruntime as ort
from PIL import Image
sys.path.insert(0, "semguard/export")
import conditioning_np   # the numpy-only builder a simulator plugin copies

out, device, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
work = out / "work"
contract = json.loads((work / "onnx" / "semguard.onnx.json").read_text())
frames = work / "large" / "sim" / "train"
name = sorted(p.relative_to(frames / "images") for p in (frames / "images").rglob("*.png"))[0]
image = np.asarray(Image.open(frames / "images" / name).convert("RGB"))
label = np.asarray(Image.open(frames / "labels" / name))
instances = np.asarray(Image.open(frames / "instances" / name)).astype(np.int32)
boxes = json.loads((frames / "boxes" / name.with_suffix(".json")).read_text())["boxes"]
feed = conditioning_np.graph_inputs(contract, image, label, instances, boxes)
reference = np.asarray(Image.open(work / "translate" / "whole" / "images" / name), dtype=np.int16)
wanted = [["CPUExecutionProvider"]]
available = ort.get_available_providers()
lines = [f"onnxruntime {ort.__version__}, providers available: {available}",
         f"frame {image.shape[1]}x{image.shape[0]} (WxH), {runs} timed run(s) after one warm-up", ""]
missing = None
if device == "cuda":
    if "CUDAExecutionProvider" in available:
        wanted.insert(0, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    else:
        missing = ("NOT MEASURED: onnxruntime's CUDA provider is not in this onnxruntime "
                   f"({available}); pip install onnxruntime-gpu to measure it")
        lines.append(missing)
worst = 0
for providers in wanted:
    session = ort.InferenceSession(str(work / "onnx" / "semguard.onnx"), providers=providers)
    used = session.get_providers()[0]
    if used != providers[0]:
        sys.exit(f"asked for {providers[0]}, onnxruntime runs {session.get_providers()}")
    session.run(["translated"], feed)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        translated = session.run(["translated"], feed)[0]
        seconds.append(time.perf_counter() - start)
    ours = conditioning_np.to_uint8(translated, label.shape).astype(np.int16)
    diff = int(np.abs(ours - reference).max())
    worst = max(worst, diff)
    lines.append(f"{used}: {min(seconds):.3f} s a frame (best of {runs}), max |onnx - semguard translate| {diff} levels")
text = "\n".join(lines) + "\n"
(out / "onnx_run.txt").write_text(text)
print(text)
if worst > 8:
    sys.exit(f"the ONNX graph's output differs from semguard translate's by {worst} levels (more than 8)")
EOF
}
run_stage onnx_run onnx_run
if grep -q "NOT MEASURED" "$OUT/onnx_run.txt"; then NOTES+=("$(grep "NOT MEASURED" "$OUT/onnx_run.txt")"); fi

# 5. the benchmarks, results under --out
run_stage bench_train_step "$PY" benchmarks/bench_train_step.py --device "$DEVICE" "${BENCH_STEP_ARGS[@]}" \
    --out "$OUT/train_step.md"
run_stage bench_translate "$PY" benchmarks/bench_translate.py --device "$DEVICE" "${BENCH_TRANSLATE_ARGS[@]}" \
    --out "$OUT/translate.md"

STAGE=summary
{
    echo "| total | $SECONDS | |"
    echo
    echo "Figures: train_speed.md (and samples_semguard.png, samples_cut.png), whole_vs_tiled.txt,"
    echo "onnx_run.txt, train_step.md, translate.md, environment.txt; logs in logs/. The data, checkpoints,"
    echo "translations and the ONNX graph are in work/, which .gitignore keeps out of git."
    for note in "${NOTES[@]+"${NOTES[@]}"}"; do echo; echo "**$note**"; done
} >> "$SUMMARY"
for note in "${NOTES[@]+"${NOTES[@]}"}"; do echo "gpu_check: $note" >&2; done
echo "gpu_check: passed ($DEVICE); everything is under $OUT (summary.md)"
