#!/usr/bin/env bash
# One-shot GPU check, from the repository root of a fresh copy on a machine with an NVIDIA GPU:
#   1. installs torch (PyPI's default Linux wheel, built for CUDA) and this package into a venv;
#   2. benchmarks/train_speed.py: one synthetic MOSEI epoch with bert-base and MiniLM sized
#      encoders (random weights, nothing downloaded): samples/s, epoch time, peak GPU memory;
#   3. builds the demo features on the CPUs (Snakemake) and trains demo seed 1 on the GPU and
#      seeds 1-3 on the CPU (benchmarks/device_agreement.py): test metrics side by side, and
#      whether the GPU run lies within the CPU runs' seed spread.
# Everything stops after GPU_CHECK_LIMIT seconds (default 480), whatever step it is in.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --quick --python "$(command -v python)"
#                                                # the same steps on CPU, shortened, with an
#                                                # existing environment: a check of the script
set -euo pipefail

LIMIT=${GPU_CHECK_LIMIT:-480}
if [[ -z ${THNE_GPU_CHECK_CHILD:-} ]]; then
    # timeout runs the script in its own process group and ends the whole group at the limit.
    export THNE_GPU_CHECK_CHILD=1
    exec timeout --kill-after=10 "$LIMIT" bash "$0" "$@"
fi

DEVICE=cuda
QUICK=0
PYTHON=""
VENV=${GPU_CHECK_VENV:-/tmp/thne-gpu-check-venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
while [[ $# -gt 0 ]]; do
    case $1 in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --python) PYTHON=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
START=$SECONDS
step() { printf '\n== [%3ds] %s\n' "$((SECONDS - START))" "$*"; }

step "machine"
uname -srm
echo "CPUs: $(nproc)"
if [[ $DEVICE == cuda* ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi

if [[ -z $PYTHON ]]; then
    step "install into $VENV"
    base=""
    for candidate in python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            base=$candidate
            break
        fi
    done
    [[ -n $base ]] || { echo "no Python >= 3.11 on PATH" >&2; exit 1; }
    if [[ ! -f $VENV/.installed ]]; then
        "$base" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
        "$VENV/bin/python" -m pip install --quiet -e "$REPO"
        touch "$VENV/.installed"
    fi
    PYTHON=$VENV/bin/python
fi
BIN=$(dirname "$PYTHON")
export PATH="$BIN:$PATH"
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())'
if [[ $DEVICE == cuda* ]]; then
    "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' ||
        { echo "torch sees no GPU" >&2; exit 1; }
fi

# A clean copy: nothing from earlier runs in it, and the checkout is left as it was.
WORK=$(mktemp -d /tmp/thne-gpu-check.XXXXXX)
tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./data --exclude=./features \
    --exclude=./results --exclude=./logs --exclude=./.snakemake --exclude=./benchmarks/out \
    -cf - . | tar -C "$WORK" -xf -
cd "$WORK"
export PYTHONPATH=$WORK
echo "working copy $WORK"

# The demo features are built on the CPUs while the GPU measures its speed.
step "demo features (CPU, $(nproc) cores), in the background: logs/features.log"
mkdir -p logs
snakemake --cores "$(nproc)" features/demo/text.h5 features/demo/audio.h5 \
    features/demo/visual.h5 features/demo/audio.stats.json features/demo/visual.stats.json \
    >logs/features.log 2>&1 &
FEATURES=$!

step "training speed on $DEVICE (synthetic MOSEI)"
if [[ $QUICK == 1 ]]; then
    "$PYTHON" benchmarks/train_speed.py --device "$DEVICE" --encoders minilm --steps 1
else
    "$PYTHON" benchmarks/train_speed.py --device "$DEVICE" --encoders bert-base,minilm
fi

step "waiting for the demo features"
if ! wait "$FEATURES"; then
    tail -n 40 logs/features.log
    echo "demo features failed" >&2
    exit 1
fi

step "demo t-HNE on $DEVICE against cpu"
if [[ $QUICK == 1 ]]; then
    "$PYTHON" benchmarks/device_agreement.py --device "$DEVICE" --reference cpu --seeds 1 \
        --reference-seeds 1,2 --max-epochs 2 --out results/device_agreement
else
    "$PYTHON" benchmarks/device_agreement.py --device "$DEVICE" --reference cpu --seeds 1 \
        --reference-seeds 1,2,3 --out results/device_agreement
fi

step "done"
