#!/usr/bin/env bash
# GPU check: the trainer under `horovodrun -np k` for k = 1, 2, 4, ..., N on this machine's
# NVIDIA GPUs (NCCL), weak scaling (same batch per rank for every k). Prints a markdown table
# (ranks | examples/s | per-rank examples/s | scaling efficiency | devices) with the date, GPU,
# driver, TensorFlow and Horovod versions, and writes the same as JSON to $OUT/gpu_check.json
# (or .local/gpu_check/gpu_check.json). Exits non-zero with a one-line reason on stderr when
# the check fails: no GPU, Horovod without NCCL, a failed run, or a rank that ran on a CPU.
#
#   bash scripts/gpu_check.sh                      # all GPUs (nvidia-smi -L), 2 days x 200k rows
#   bash scripts/gpu_check.sh --max-ranks 4 --rows 100000
#   bash scripts/gpu_check.sh --cpu --max-ranks 2 --rows 20000   # the same check on CPU (Gloo)
#   bash scripts/gpu_check.sh --setup-only         # only build / verify the GPU environment
#
# Environment (GPU mode): $MLOPS_GPU_VENV if it is set and has Horovod; otherwise
# .venv-trainer-gpu in the repository, built once: requirements-trainer-gpu.txt, or
# requirements-trainer.txt with tensorflow[and-cuda] in place of tensorflow-cpu (same version),
# with constraints-trainer.txt, then Horovod from source with NCCL. NCCL comes from the
# nvidia-nccl-cu12 wheel that tensorflow[and-cuda] installs. Horovod's CUDA kernels need nvcc, which the
# nvidia-cuda-nvcc-cu12 wheel does not ship (it has ptxas only): the build uses a CUDA toolkit
# from $HOROVOD_CUDA_HOME, $CUDA_HOME, nvcc on PATH or /usr/local/cuda, and stops with a
# one-line reason if there is none. Also needed for the build: python3.11 (or $PYTHON), a C++
# compiler; cmake is installed into the venv if missing. --cpu uses the existing trainer venv
# ($MLOPS_TRAINER_VENV or .venv-trainer, `make trainer-env`).
#
# Once the environment exists the check should take 1-3 minutes on an 8-GPU node (an estimate:
# 4 runs of 3 short epochs, mostly process start-up, about 20 s a run on CPU); it prints its
# elapsed time and warns past 5 minutes. Building .venv-trainer-gpu takes longer (about 6
# minutes on 2 cores with the CUDA kernels for one GPU architecture).
set -euo pipefail

# Builtins only until the nvidia-smi check (it must work with an empty PATH).
script_dir=${BASH_SOURCE[0]%/*}
[[ "$script_dir" == "${BASH_SOURCE[0]}" ]] && script_dir=.
ROOT=$(cd "$script_dir/.." && pwd)

die() {
    printf 'gpu_check: FAIL: %s\n' "$*" >&2
    exit 1
}
say() { printf '[gpu_check +%3ds] %s\n' "$SECONDS" "$*"; }
usage() {
    local line
    while IFS= read -r line; do
        [[ "$line" == "#!"* ]] && continue
        [[ "$line" == "#"* ]] || break
        line=${line#"#"}
        printf '%s\n' "${line# }"
    done <"${BASH_SOURCE[0]}"
    printf '\nOptions: --cpu --max-ranks K --rows N (per day) --days D --epochs E --batch-size B\n'
    printf '         --steps S (per epoch; default: what the smallest shard allows, at most 100)\n'
    printf '         --timeout SECONDS (per run, default 180) --keep (keep the temp lake) --setup-only\n'
}

MODE=gpu
MAX_RANKS=
ROWS=200000
DAYS=2
EPOCHS=3
BATCH=1024
STEPS=
RUN_TIMEOUT=180
KEEP=0
SETUP_ONLY=0
STEP_CAP=100

need_int() {
    [[ "${2-}" =~ ^[1-9][0-9]*$ ]] || die "$1 expects a positive integer, got '${2-}'"
}
while (($#)); do
    case "$1" in
        --cpu) MODE=cpu ;;
        --max-ranks) need_int "$1" "${2-}"; MAX_RANKS=$2; shift ;;
        --rows) need_int "$1" "${2-}"; ROWS=$2; shift ;;
        --days) need_int "$1" "${2-}"; DAYS=$2; shift ;;
        --epochs) need_int "$1" "${2-}"; EPOCHS=$2; shift ;;
        --batch-size) need_int "$1" "${2-}"; BATCH=$2; shift ;;
        --steps) need_int "$1" "${2-}"; STEPS=$2; shift ;;
        --timeout) need_int "$1" "${2-}"; RUN_TIMEOUT=$2; shift ;;
        --keep) KEEP=1 ;;
        --setup-only) SETUP_ONLY=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
((ROWS >= 100)) || die "--rows must be at least 100"
((EPOCHS >= 2)) || die "--epochs must be at least 2 (examples/s is measured after the first epoch)"

# 1. Devices ------------------------------------------------------------------------------
GPU_NAME=
GPU_COUNT=0
if [[ $MODE == gpu ]]; then
    command -v nvidia-smi >/dev/null 2>&1 ||
        die "nvidia-smi not found on PATH: no NVIDIA driver on this machine (use --cpu to check the CPU/Gloo path)"
    gpu_list=$(nvidia-smi -L 2>&1) || die "nvidia-smi -L failed: ${gpu_list//$'\n'/ }"
    GPU_COUNT=$(grep -c '^GPU ' <<<"$gpu_list" || true)
    if [[ -n "${CUDA_VISIBLE_DEVICES-}" ]]; then
        IFS=, read -ra visible <<<"$CUDA_VISIBLE_DEVICES"
        ((${#visible[@]} < GPU_COUNT)) && GPU_COUNT=${#visible[@]}
    fi
    ((GPU_COUNT > 0)) || die "nvidia-smi lists no usable GPU (nvidia-smi -L: '${gpu_list//$'\n'/ }', CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES-}')"
    GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
    N=$GPU_COUNT
    if [[ -n $MAX_RANKS ]]; then
        if ((MAX_RANKS > GPU_COUNT)); then
            say "--max-ranks $MAX_RANKS > $GPU_COUNT GPUs: using $GPU_COUNT (one rank per GPU)"
        else
            N=$MAX_RANKS
        fi
    fi
else
    N=${MAX_RANKS:-$(nproc)}
    STEP_CAP=20
fi
say "mode $MODE, up to $N ranks${GPU_NAME:+, GPU: $GPU_NAME ($GPU_COUNT visible)}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if ((KEEP)); then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# 2. Environment --------------------------------------------------------------------------
# Horovod's TensorFlow extension is there (without importing TensorFlow: that is the probe's job).
has_horovod() {
    [[ -x "$1/bin/python" ]] && "$1/bin/python" -c '
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("horovod")
sys.exit(0 if spec and any(pathlib.Path(spec.origin).parent.glob("tensorflow/mpi_lib*.so")) else 1)
' >/dev/null 2>&1
}

site_packages() {
    "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

# A CUDA toolkit root: runnable bin/nvcc and the runtime headers and static library next to it
# (an nvcc wrapper script on PATH, e.g. /usr/local/bin/nvcc, is not a root).
is_cuda_home() {
    [[ -n "$1" && -x "$1/bin/nvcc" ]] || return 1
    [[ -f "$1/include/cuda_runtime.h" || -f "$1/targets/x86_64-linux/include/cuda_runtime.h" ]] || return 1
    "$1/bin/nvcc" --version >/dev/null 2>&1
}

find_cuda_home() {
    local c nvcc_path
    local candidates=("${HOROVOD_CUDA_HOME-}" "${CUDA_HOME-}" "${CUDA_PATH-}" /usr/local/cuda)
    if nvcc_path=$(command -v nvcc 2>/dev/null); then
        nvcc_path=$(readlink -f "$nvcc_path")
        candidates+=("${nvcc_path%/bin/nvcc}")
    fi
    candidates+=(/usr/local/cuda-12* /usr/local/cuda-*)
    for c in "${candidates[@]}"; do
        if is_cuda_home "$c"; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

build_gpu_venv() {
    local venv=$1 py=${PYTHON:-python3.11} cuda_home site nccl shim hvd_pin cc_list=
    command -v "$py" >/dev/null 2>&1 || die "$py not found: the GPU environment needs Python 3.11 (set PYTHON=...)"
    cuda_home=$(find_cuda_home) ||
        die "no CUDA toolkit with nvcc (looked at \$HOROVOD_CUDA_HOME, \$CUDA_HOME, nvcc on PATH, /usr/local/cuda): Horovod's NCCL build compiles CUDA kernels and the nvidia-cuda-nvcc-cu12 wheel has no nvcc; install a CUDA 12 toolkit or set HOROVOD_CUDA_HOME"
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "no C++ compiler (c++/g++) to build Horovod"
    hvd_pin=$(grep -E '^horovod==' "$ROOT/requirements-horovod.txt" || echo "horovod==0.28.1")
    local nvcc_release
    nvcc_release=$("$cuda_home/bin/nvcc" --version | sed -nE 's/.*release ([0-9]+\.[0-9]+).*/\1/p')
    if [[ $nvcc_release != 12.* ]]; then
        say "warning: CUDA toolkit $cuda_home is release ${nvcc_release:-unknown}, TensorFlow 2.18 uses CUDA 12.5: Horovod links this CUDA runtime statically, so the driver must support it (set HOROVOD_CUDA_HOME to a CUDA 12 toolkit to match)"
    fi
    say "building $venv: tensorflow[and-cuda], then $hvd_pin from source with NCCL (CUDA toolkit $cuda_home; takes a while)"
    [[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade "pip==26.3"
    # requirements-trainer-gpu.txt (the GPU image's) where it exists; else requirements-trainer.txt
    # less tensorflow-cpu, plus the CUDA build of the same TensorFlow.
    local tf_version req=$WORK/requirements-gpu.txt
    if [[ -f "$ROOT/requirements-trainer-gpu.txt" ]]; then
        req=$ROOT/requirements-trainer-gpu.txt
    else
        tf_version=$(sed -nE 's/^[[:space:]]*tensorflow-cpu[[:space:]]*==[[:space:]]*([^[:space:]#;]+).*/\1/p' "$ROOT/requirements-trainer.txt" | head -n 1)
        [[ -n "$tf_version" ]] || die "no tensorflow-cpu==VERSION line in requirements-trainer.txt"
        grep -viE '^[[:space:]]*tensorflow-cpu[[:space:]]*([=<>~!]|$)' "$ROOT/requirements-trainer.txt" >"$req"
        printf 'tensorflow[and-cuda]==%s\n' "$tf_version" >>"$req"
    fi
    "$venv/bin/python" -m pip install --quiet -r "$req" -c "$ROOT/constraints-trainer.txt"

    site=$(site_packages "$venv")
    nccl=$site/nvidia/nccl
    [[ -f "$nccl/include/nccl.h" && -e "$nccl/lib/libnccl.so.2" ]] ||
        die "nvidia-nccl-cu12 (from tensorflow[and-cuda]) not found under $nccl"
    # The wheel has libnccl.so.2 only; Horovod's FindNCCL looks for libnccl.so (shared link).
    shim=$venv/nccl
    mkdir -p "$shim/lib"
    ln -sfn "$nccl/include" "$shim/include"
    ln -sf "$nccl/lib/libnccl.so.2" "$shim/lib/libnccl.so"
    ln -sf "$nccl/lib/libnccl.so.2" "$shim/lib/libnccl.so.2"
    if ! command -v cmake >/dev/null 2>&1; then
        "$venv/bin/python" -m pip install --quiet cmake
    fi
    # Build the CUDA kernels for this machine's GPUs only (much faster than every arch).
    if [[ -z "${HOROVOD_BUILD_CUDA_CC_LIST-}" ]]; then
        cc_list=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d ' .' | grep -E '^[0-9]+$' | sort -un | paste -sd, - || true)
    fi
    "$venv/bin/python" -m pip uninstall --quiet --yes horovod >/dev/null 2>&1 || true
    say "compiling Horovod (NCCL $nccl, CUDA $cuda_home${cc_list:+, compute capabilities $cc_list})"
    PATH="$venv/bin:$cuda_home/bin:$PATH" \
        HOROVOD_CUDA_HOME="$cuda_home" \
        HOROVOD_NCCL_HOME="$shim" HOROVOD_NCCL_INCLUDE="$nccl/include" HOROVOD_NCCL_LIB="$shim/lib" \
        HOROVOD_NCCL_LINK=SHARED \
        HOROVOD_BUILD_CUDA_CC_LIST="${HOROVOD_BUILD_CUDA_CC_LIST:-$cc_list}" \
        LDFLAGS="${LDFLAGS:+$LDFLAGS }-Wl,-rpath,$nccl/lib" \
        HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_CPU_OPERATIONS=GLOO \
        HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
        HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
        CMAKE_POLICY_VERSION_MINIMUM=3.5 \
        "$venv/bin/python" -m pip install --no-build-isolation --no-cache-dir \
        -c "$ROOT/constraints-trainer.txt" "$hvd_pin" >"$WORK/horovod-build.log" 2>&1 || {
        tail -n 40 "$WORK/horovod-build.log"
        cp "$WORK/horovod-build.log" "$venv/horovod-build.log" 2>/dev/null || true
        die "Horovod build failed (last lines above; full log $venv/horovod-build.log)"
    }
    cp "$WORK/horovod-build.log" "$venv/horovod-build.log"
    TF_CPP_MIN_LOG_LEVEL=2 LD_LIBRARY_PATH="$nccl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$venv/bin/python" -c \
        'import horovod.tensorflow as hvd, sys; sys.exit(0 if hvd.nccl_built() else 1)' 2>"$WORK/verify.err" ||
        die "Horovod in $venv was built without NCCL or does not load (hvd.nccl_built()): $(tail -n 1 "$WORK/verify.err"); build log $venv/horovod-build.log"
    printf 'cuda_home=%s\nnccl=%s\nhorovod=%s\n' "$cuda_home" "$nccl" "$hvd_pin" >"$venv/.installed"
}

SETUP_T0=$SECONDS
if [[ $MODE == cpu ]]; then
    VENV=${MLOPS_TRAINER_VENV:-$ROOT/.venv-trainer}
    has_horovod "$VENV" || die "no Horovod in the trainer venv $VENV (run make trainer-env)"
else
    VENV=
    if [[ -n "${MLOPS_GPU_VENV-}" ]]; then
        if has_horovod "$MLOPS_GPU_VENV"; then
            VENV=$MLOPS_GPU_VENV
        else
            say "MLOPS_GPU_VENV=$MLOPS_GPU_VENV has no Horovod: using .venv-trainer-gpu"
        fi
    fi
    if [[ -z $VENV ]]; then
        VENV=$ROOT/.venv-trainer-gpu
        [[ -f "$VENV/.installed" ]] || build_gpu_venv "$VENV"
    fi
fi
PY=$VENV/bin/python
SITE=$(site_packages "$VENV")
NCCL_LIB=
if [[ -d "$SITE/nvidia/nccl/lib" ]]; then
    NCCL_LIB=$SITE/nvidia/nccl/lib
fi

# Versions and what Horovod was built with, in one interpreter.
probe=$(TF_CPP_MIN_LOG_LEVEL=2 LD_LIBRARY_PATH="${NCCL_LIB}${NCCL_LIB:+${LD_LIBRARY_PATH:+:}}${LD_LIBRARY_PATH-}" "$PY" -c '
import horovod, tensorflow as tf, horovod.tensorflow as hvd
print("tensorflow=" + tf.__version__)
print("horovod=" + horovod.__version__)
print("nccl_built=%d" % int(hvd.nccl_built()))
print("gloo_built=%d" % int(bool(hvd.gloo_built())))
print("tf_cuda=%d" % int(tf.test.is_built_with_cuda()))
print("hvd_cuda=%d" % int(bool(hvd.cuda_built())))
' 2>"$WORK/probe.err") || die "cannot import tensorflow/horovod from $PY: $(tail -n 1 "$WORK/probe.err")"
probe_value() { sed -n "s/^$1=//p" <<<"$probe"; }
TF_VERSION=$(probe_value tensorflow)
HVD_VERSION=$(probe_value horovod)
NCCL_BUILT=$(probe_value nccl_built)
TF_CUDA=$(probe_value tf_cuda)
say "venv $VENV: TensorFlow $TF_VERSION (CUDA build: $TF_CUDA), Horovod $HVD_VERSION (nccl_built: $NCCL_BUILT, gloo_built: $(probe_value gloo_built))"
if [[ $MODE == gpu ]]; then
    if ((NCCL_BUILT == 0)); then
        if [[ $VENV == "$ROOT/.venv-trainer-gpu" ]]; then
            hint="remove .venv-trainer-gpu and rerun to rebuild it"
        else
            hint="rebuild it with HOROVOD_GPU_OPERATIONS=NCCL, or unset MLOPS_GPU_VENV to build .venv-trainer-gpu"
        fi
        die "Horovod in $VENV was built without NCCL (hvd.nccl_built() == 0): $hint"
    fi
    ((TF_CUDA == 1)) || die "TensorFlow in $VENV is not a CUDA build (tensorflow-cpu?): install tensorflow[and-cuda]"
    [[ $(probe_value hvd_cuda) == 1 ]] || die "Horovod in $VENV was built without CUDA (hvd.cuda_built() is False)"
fi
SETUP_SECONDS=$((SECONDS - SETUP_T0))
if ((SETUP_ONLY)); then
    say "environment ready: $VENV"
    exit 0
fi
CHECK_T0=$SECONDS

# 3. Data ---------------------------------------------------------------------------------
LAKE=$WORK/lake
PARTITIONS=$("$PY" -c '
import datetime as dt, sys
print(",".join((dt.date(2026, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(int(sys.argv[1]))))
' "$DAYS")
say "generating $DAYS days x $ROWS rows ($PARTITIONS) into $LAKE"
TRAIN_ROWS=$(cd "$ROOT" && PYTHONPATH="$ROOT" "$PY" -c '
import sys
from pathlib import Path
from devstack.datagen import write_day
from include.mlops.common.dataset import load_dataset_config, parse_date
lake, rows, parts = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
cfg = load_dataset_config("datasets/card_fraud.yaml")
days = [parse_date(p) for p in parts]
for d in days:
    write_day(lake, d, rows, location=cfg.location)
ids = cfg.read_partitions(lake, days, columns=[cfg.id_column])[cfg.id_column].to_numpy()
print(int((~cfg.holdout_mask(ids)).sum()))
' "$LAKE" "$ROWS" "$PARTITIONS" 2>"$WORK/datagen.err") || die "data generation failed: $(tail -n 1 "$WORK/datagen.err")"

# Same steps per epoch for every k: what the smallest shard (at N ranks) allows.
MAX_STEPS=$((TRAIN_ROWS / N / BATCH))
((MAX_STEPS >= 1)) ||
    die "too little data: $TRAIN_ROWS training rows over $N ranks is under one batch of $BATCH per rank (raise --rows or lower --batch-size)"
if [[ -z $STEPS ]]; then
    STEPS=$((MAX_STEPS < STEP_CAP ? MAX_STEPS : STEP_CAP))
elif ((STEPS > MAX_STEPS)); then
    say "--steps $STEPS: the $N-rank shards allow only $MAX_STEPS steps of $BATCH; using $MAX_STEPS for every k"
    STEPS=$MAX_STEPS
fi

RANKS=()
for ((k = 1; k < N; k *= 2)); do RANKS+=("$k"); done
RANKS+=("$N")
RANKS_CSV=$(IFS=,; echo "${RANKS[*]}")

OUT_DIR=${OUT:-$ROOT/.local/gpu_check}
RUNS=$OUT_DIR/gpu_check-runs
rm -rf "$RUNS"
mkdir -p "$RUNS"
say "train rows $TRAIN_ROWS; ranks $RANKS_CSV; $EPOCHS epochs x $STEPS steps x batch $BATCH per rank; logs in $RUNS"

# 4. Runs ---------------------------------------------------------------------------------
extra=()
if [[ $MODE == cpu ]]; then
    extra=(--threads 1 --bind-cores) # one core per rank, as `make bench` measures
fi
for k in "${RANKS[@]}"; do
    result=$RUNS/np$k.json
    log=$RUNS/np$k.log
    t0=$(date +%s.%N)
    rc=0
    (
        cd "$ROOT"
        unset VIRTUAL_ENV PYTHONHOME
        while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^AIRFLOW' || true)
        export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV" PYTHONPATH="$ROOT" PYTHONUNBUFFERED=1
        export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" TF_FORCE_GPU_ALLOW_GROWTH=true
        export MLOPS_LAKE="$LAKE" MLFLOW_TRACKING_URI="sqlite:///$WORK/mlflow.db"
        export MLOPS_MLFLOW_ARTIFACT_ROOT="$WORK/artifacts"
        if [[ -n $NCCL_LIB ]]; then
            export LD_LIBRARY_PATH="$NCCL_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        fi
        exec timeout --kill-after=20 "$RUN_TIMEOUT" \
            horovodrun -np "$k" -H "localhost:$k" --gloo \
            python -m include.mlops.trainer train \
            --dataset-config datasets/card_fraud.yaml --partitions "$PARTITIONS" \
            --epochs "$EPOCHS" --max-steps-per-epoch "$STEPS" --batch-size "$BATCH" \
            --no-log-model --result-path "$result" "${extra[@]}"
    ) >"$log" 2>&1 || rc=$?
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "$rc $wall" >"$RUNS/np$k.status"
    if ((rc != 0)); then
        say "ranks=$k: exit $rc after ${wall}s; last lines of $log:"
        tail -n 25 "$log" | sed 's/^/    /'
        break
    fi
    eps=$("$PY" -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["examples_per_sec"]))' "$result" 2>/dev/null || echo "?")
    devices=$(grep -oE 'horovod rank [0-9]+/[0-9]+ local_rank [0-9]+ device [^ ]+ collective [^ ]+' "$log" |
        awk '{ print $7 "/" $9 }' | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }' || true)
    say "ranks=$k: $eps examples/s, ${wall}s wall, devices: ${devices:-unknown}"
    if [[ $MODE == gpu ]] && grep -qE 'horovod rank .* device [^ ]*CPU' "$log"; then
        say "ranks=$k: a rank ran on a CPU device; not running more ranks"
        break
    fi
done
CHECK_SECONDS=$((SECONDS - CHECK_T0))

# 5. Report -------------------------------------------------------------------------------
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
report_rc=0
"$PY" "$ROOT/scripts/gpu_check_report.py" --mode "$MODE" --runs-dir "$RUNS" --ranks "$RANKS_CSV" \
    --out-json "$OUT_DIR/gpu_check.json" --timeout "$RUN_TIMEOUT" \
    --meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --meta "gpu=${GPU_NAME:-none}" --meta "gpu_count=$GPU_COUNT" \
    --meta "cpu=$(nproc) cores" \
    --meta "tensorflow=$TF_VERSION" --meta "horovod=$HVD_VERSION" --meta "nccl_built=$NCCL_BUILT" \
    --meta "venv=$VENV" --meta "commit=$commit" \
    --meta "rows_per_day=$ROWS" --meta "days=$DAYS" --meta "train_rows=$TRAIN_ROWS" \
    --meta "epochs=$EPOCHS" --meta "batch_size_per_rank=$BATCH" --meta "steps_per_epoch=$STEPS" \
    --meta "setup_seconds=$SETUP_SECONDS" --meta "elapsed_seconds=$CHECK_SECONDS" || report_rc=$?
say "elapsed: ${CHECK_SECONDS}s for the check (+${SETUP_SECONDS}s environment), ${SECONDS}s in all"
if ((CHECK_SECONDS > 300)); then
    say "warning: the check took over 5 minutes"
fi
exit "$report_rc"
