#!/usr/bin/env bash
# One GPU check of the project, for a machine lent for a few minutes: environment, the
# device-parametrized tests on CUDA, AMP training + evaluation on the shapes data, and the Swin-T
# benchmark on the GPU. Each step is headed and timed, has its own timeout and runs even when an
# earlier one failed; the exit status is non-zero if any required step failed. Everything printed
# also goes to "${OUT:-/tmp}/gpu_check.log" (with the benchmark tables beside it).
#
#   PYTHONUNBUFFERED=1 bash tools/gpu_check.sh          # on the GPU machine, from the repository root
#   GPU_CHECK_CPU=1 bash tools/gpu_check.sh             # dry run on a CPU machine: tiny settings
#
# Assumes python3 with torch (+ CUDA) and the project's dependencies importable, and PYTHONPATH
# including the repository. Settings (environment):
#   OUT               where the log, the benchmark Markdown and the training metrics go (default /tmp)
#   GPU_CHECK_CPU     1: run every step on the CPU with tiny settings (2 iterations, -k cpu tests)
#   GPU_CHECK_BUDGET  seconds for the whole script (default 360); a step never gets more than what is
#                     left of it, and a step with less than 20 s left is not started (counted as failed)
#   GPU_CHECK_WORK    scratch folder for the dataset and checkpoints (default /tmp/gpu_check_work)
#   GPU_CHECK_STEPS   the steps to run, in the order below (default: env tests train bench bench_compiled)
set -u -o pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/.." && pwd)"
OUT="${OUT:-/tmp}"
WORK="${GPU_CHECK_WORK:-/tmp/gpu_check_work}"
LOG="$OUT/gpu_check.log"
PY="${PYTHON:-python3}"

if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
    DEVICE=cpu; ITERS=2; NUM_TRAIN=8; NUM_VAL=4; WORKERS=0; TRAIN_PRECISIONS="bf16"
    SHAPES_ARGS=(--image-size 96)
    TINY_MODEL=(MODEL.SWIN.EMBED_DIM 16 MODEL.SWIN.DEPTHS "[1, 1, 1, 1]" MODEL.SWIN.NUM_HEADS "[1, 1, 2, 2]"
                INPUT.MIN_SIZE_TRAIN "(96,)" INPUT.MAX_SIZE_TRAIN 128 INPUT.MIN_SIZE_TEST 96 INPUT.MAX_SIZE_TEST 128)
    BENCH_ARGS=(--rounds 1 --threads 1 --inputs "224² batch 1" --precision fp32)
    COMPILED_ARGS=(--rounds 1 --threads 1 --inputs "224² batch 1" --precision fp32)
else
    DEVICE=cuda; ITERS=100; NUM_TRAIN=400; NUM_VAL=100; WORKERS=4; TRAIN_PRECISIONS="fp16 bf16"
    SHAPES_ARGS=(); TINY_MODEL=()
    BENCH_ARGS=(--rounds 20)
    COMPILED_ARGS=(--rounds 20 --inputs "224² batch 64" --precision fp32)
fi

# ---------------------------------------------------------------------------------------------
# The steps (each runs in its own bash process: bash gpu_check.sh --run-step NAME)

step_env() {
    "$PY" -m swin_scratch.env
    "$PY" - <<'EOF'
import importlib, torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU 0: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, "
          f"{p.multi_processor_count} SMs; {torch.cuda.device_count()} visible")
for name in ("torchvision", "timm", "numpy", "detectron2", "fvcore", "pycocotools", "onnx", "onnxruntime"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as err:
        print(f"{name}: {type(err).__name__}: {err}")
EOF
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi -L
        nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu --format=csv
    else
        echo "nvidia-smi: not on PATH"
    fi
}

step_tests() {
    local options=(-n 4)
    # CPU dry run: -k cpu also matches slow CPU-only tests by name (e.g. ..._training_on_cpu_...)
    [ "$DEVICE" = cpu ] && options=(-n 0 -m "not slow")
    # The tests that take the `device` fixture (tests/conftest.py) run once per device; -k picks this one.
    "$PY" -m pytest -p no:cacheprovider "${options[@]}" -k "$DEVICE" --tb=short \
        tests/models/test_swin_model.py tests/models/test_swin_reference.py tests/layers/test_attention_kernel.py \
        tests/test_precision.py tests/benchmark/test_benchmark_report.py
}

run_logged() {  # run_logged NAME CMD...: full output to $OUT/NAME.log; here the key lines (all its tail on failure)
    local name="$1" rc
    shift
    "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    grep -E "eta: |copypaste: |^error|^warning|Traceback" "$OUT/$name.log" | cut -c1-300
    if [ "$rc" -ne 0 ]; then echo "... exit $rc; the last lines of $OUT/$name.log:"; tail -n 40 "$OUT/$name.log"; fi
    echo "(full output: $OUT/$name.log)"
    return $rc
}

summarize_training() {  # metrics.json of one run: loss at start and end, seconds per iteration
    "$PY" - "$1" "$2" <<'EOF'
import json, statistics, sys
label, path = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(path) if line.strip()]
losses = [(r["iteration"], r["total_loss"]) for r in rows if "total_loss" in r]
times = [r["time"] for r in rows if "time" in r]
(first_it, first), (last_it, last) = losses[0], losses[-1]
speed = f"{statistics.median(times):.3f} s/iter (median of the logged windows)" if times else "s/iter not logged"
print(f"[{label}] total_loss {first:.3f} (iter {first_it}) -> {last:.3f} (iter {last_it}); {speed}")
EOF
}

step_train() {
    local shapes="$WORK/shapes" common rc=0
    rm -rf "$WORK/train_"* "$WORK/eval"
    "$PY" tools/make_shapes_dataset.py --root "$shapes" --num-train "$NUM_TRAIN" --num-val "$NUM_VAL" \
        "${SHAPES_ARGS[@]}" --quiet || return 1
    # config overrides (KEY VALUE pairs) come after every option of train_net.py
    common=("${TINY_MODEL[@]}" MODEL.DEVICE "$DEVICE" DATASETS.SHAPES_ROOT "$shapes" DATALOADER.NUM_WORKERS "$WORKERS"
            SEED 7)
    for precision in $TRAIN_PRECISIONS; do
        echo "--- training $ITERS iterations on $DEVICE with SOLVER.AMP.PRECISION $precision"
        local start=$SECONDS
        # detectron2 v0.6's EvalHook evaluates shapes_val once after the last iteration (even with
        # TEST.EVAL_PERIOD 0): that AP is of the run just trained
        run_logged "train_$precision" "$PY" tools/train_net.py --config swin_shapes.yaml "${common[@]}" \
            SOLVER.AMP.ENABLED True SOLVER.AMP.PRECISION "$precision" SOLVER.MAX_ITER "$ITERS" \
            SOLVER.WARMUP_ITERS 20 SOLVER.STEPS "(90,)" SOLVER.CHECKPOINT_PERIOD 1000 TEST.EVAL_PERIOD 0 \
            OUTPUT_DIR "$WORK/train_$precision" || { rc=1; continue; }
        echo "[$precision] wall time $((SECONDS - start)) s (start-up included)"
        summarize_training "$precision" "$WORK/train_$precision/metrics.json" || rc=1
        cp "$WORK/train_$precision/metrics.json" "$OUT/train_${precision}_metrics.json" 2>/dev/null
    done
    local first="${TRAIN_PRECISIONS%% *}"
    echo "--- --eval-only of the $first run on shapes_val (TEST.PRECISION fp32)"
    run_logged "eval_$first" "$PY" tools/train_net.py --config swin_shapes.yaml --eval-only "${common[@]}" \
        MODEL.WEIGHTS "$WORK/train_$first/model_final.pth" OUTPUT_DIR "$WORK/eval" || rc=1
    return $rc
}

step_bench() {
    "$PY" tools/benchmark.py --device "$DEVICE" "${BENCH_ARGS[@]}" --speed-only --no-compile \
        --markdown "$OUT/bench_$DEVICE.md"
}

step_bench_compiled() {
    "$PY" tools/benchmark.py --device "$DEVICE" "${COMPILED_ARGS[@]}" --speed-only \
        --markdown "$OUT/bench_${DEVICE}_compiled.md"
}

if [ "${1:-}" = --run-step ]; then
    cd "$REPO" && "step_$2"
    exit $?
fi

# ---------------------------------------------------------------------------------------------
# The driver: name, timeout (s), required (1) or optional (0), what it does

STEPS=(
    "env 60 1 environment: python -m swin_scratch.env, torch/CUDA, nvidia-smi"
    "tests 150 1 pytest -k $DEVICE of the device-parametrized tests"
    "train 200 1 AMP training ($TRAIN_PRECISIONS, $ITERS iterations) on shapes + --eval-only"
    "bench 120 1 tools/benchmark.py --device $DEVICE (eager fp32/bf16/fp16 rows)"
    "bench_compiled 150 0 tools/benchmark.py --device $DEVICE torch.compile rows (${COMPILED_ARGS[*]})"
)

mkdir -p "$OUT" "$WORK"
: > "$LOG"
cd "$REPO"
BUDGET="${GPU_CHECK_BUDGET:-360}"
BEGIN=$SECONDS
FAILED=()
SUMMARY=()
echo "gpu_check: device $DEVICE, budget ${BUDGET} s, log $LOG, $(date -u +%FT%TZ)" | tee -a "$LOG"

SELECTED=" ${GPU_CHECK_STEPS:-env tests train bench bench_compiled} "
for entry in "${STEPS[@]}"; do
    read -r name limit required what <<<"$entry"
    [[ "$SELECTED" == *" $name "* ]] || continue
    left=$((BUDGET - (SECONDS - BEGIN)))
    [ "$limit" -gt "$left" ] && limit=$left
    echo "" | tee -a "$LOG"
    echo "=== [$name] $what (timeout ${limit} s) ===" | tee -a "$LOG"
    start=$SECONDS
    if [ "$limit" -lt 20 ]; then
        echo "not started: only ${left} s of the ${BUDGET} s budget left" | tee -a "$LOG"
        rc=124
    else
        timeout -k 10 "$limit" bash "$SELF" --run-step "$name" 2>&1 | tee -a "$LOG"
        rc=${PIPESTATUS[0]}
    fi
    took=$((SECONDS - start))
    if [ "$rc" -eq 0 ]; then
        verdict="ok"
    else
        verdict="FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out'))"
        if [ "$required" = 1 ]; then FAILED+=("$name"); else verdict="$verdict, optional"; fi
    fi
    echo "--- [$name] $verdict in ${took} s ---" | tee -a "$LOG"
    SUMMARY+=("$(printf '%-15s %-40s %4d s' "$name" "$verdict" "$took")")
done

{
    echo ""
    echo "=== summary ($((SECONDS - BEGIN)) s in all) ==="
    printf '%s\n' "${SUMMARY[@]}"
    if [ "${#FAILED[@]}" -eq 0 ]; then echo "gpu_check: all required steps passed"; else echo "gpu_check: FAILED: ${FAILED[*]}"; fi
} | tee -a "$LOG"
[ "${#FAILED[@]}" -eq 0 ]
