#!/usr/bin/env bash
# One-shot GPU check for an offline machine with an NVIDIA GPU and a CUDA build of torch in
# its own python3 (for example Python 3.12, torch 2.11 for CUDA 13, transformers 5, h5py,
# pandas, scikit-learn; no snakemake, librosa, PyAV, dlib or mmsdk; no network).
#
# Nothing is installed over the network. What the machine lacks travels in a kit folder
# (default .gpu-check/, git-ignored, at most 56 MiB) prepared beforehand, on a machine with this
# checkout's environment (make install) and the network:
#
#   bash benchmarks/gpu_check.sh --prepare [--configfile FILE]
#
# which writes .gpu-check/wheels/ (this package as a wheel, and a wheel of each pure-Python
# package named in GPU_CHECK_EXTRA_WHEELS, e.g. "jsonschema==4.23.0"), .gpu-check/encoder/ (the
# demo's MiniLM text encoder, weights stored in float16 to travel: 44 MiB instead of 87) and
# .gpu-check/demo/ (exactly the demo files the check reads: the manifest, the three feature
# files and two stats files, 7 MiB), which it builds with Snakemake where they are not built
# yet (--configfile is passed on to it); 52 MiB in all. Then, on the GPU machine, from the
# repository root with .gpu-check beside it (nothing else is read from data/ or features/):
#
#   bash benchmarks/gpu_check.sh
#
#   1. uses python3 (or --python) when its torch is a CUDA build that sees a GPU;
#   2. installs the kit's wheels with pip --no-index into a folder of its own (PYTHONPATH);
#   3. benchmarks/train_speed.py: one synthetic MOSI-size and one MOSEI-size epoch with
#      bert-base and MiniLM sized encoders (random weights from a config, nothing
#      downloaded): samples/s, epoch time, peak host and GPU memory; then
#      benchmarks/step_ops.py: the ATen operations of one training step on CUDA's paths, and
#      host CPU time beside wall time per step (estimated 1 min);
#   4. benchmarks/device_agreement.py: demo t-HNE seed 1 on the GPU beside seeds 1-3 on the
#      CPUs, from the kit's encoder: test metrics side by side, and whether the GPU run lies
#      within the CPU runs' seed spread;
#   5. benchmarks/packed_throughput.py: 1, 2, 4 and 8 concurrent bert-base-sized MOSI-size,
#      then MOSEI-size, training jobs on cuda:0, each its own process (estimated 140 s): summed
#      samples/s against one job's, peak GPU memory per job, and how many jobs one GPU should
#      run. Last, so that the steps before it have their figures if time runs out; it is given
#      the time left and skips the rows that would not fit (MOSEI's first).
# Everything stops after GPU_CHECK_LIMIT seconds (default 480), whatever step it is in.
# --only speed,agreement,packed runs only the steps named (e.g. --only packed in a call of
# its own); figures go under --out (default results/gpu_check).
#
#   bash benchmarks/gpu_check.sh --dry-run --python .venv/bin/python
#       the same steps on the CPU, shortened (one batch of 4 clips with MiniLM; the demo step
#       only checks its inputs; one and two MiniLM-sized MOSI jobs of one batch each): a check
#       of the script and of the kit's offline install.
set -euo pipefail

LIMIT=${GPU_CHECK_LIMIT:-480}
if [[ -z ${THNE_GPU_CHECK_CHILD:-} ]]; then
    # timeout runs the script in its own process group and ends the whole group at the limit.
    export THNE_GPU_CHECK_CHILD=1
    exec timeout --kill-after=10 "$LIMIT" bash "$0" "$@"
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
MODE=check
PYTHON=""
KIT=$REPO/.gpu-check
OUTDIR=$REPO/results/gpu_check
ONLY=speed,agreement,packed
CONFIGFILE=""
while [[ $# -gt 0 ]]; do
    case $1 in
    --dry-run) MODE=dry; shift ;;
    --prepare) MODE=prepare; shift ;;
    --python) PYTHON=$2; shift 2 ;;
    --kit) KIT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --out) OUTDIR=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --configfile) CONFIGFILE=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
START=$SECONDS
for name in ${ONLY//,/ }; do
    case $name in
    speed | agreement | packed) ;;
    *) echo "gpu_check.sh: --only takes speed, agreement and packed, not $name" >&2; exit 2 ;;
    esac
done
wanted() { [[ ,$ONLY, == *,$1,* ]]; }
step() { printf '\n== [%3ds] %s\n' "$((SECONDS - START))" "$*"; }
DEMO_INPUTS=(data/demo/manifest.tsv features/demo/text.h5 features/demo/audio.h5
    features/demo/visual.h5 features/demo/audio.stats.json features/demo/visual.stats.json)

prepare_help() {
    cat >&2 <<EOF
The kit $KIT is missing or incomplete. Prepare it beforehand, on a machine with this
checkout's environment (make install) and the network, from the repository root:

    bash benchmarks/gpu_check.sh --prepare

and bring .gpu-check/ along with the checkout.
EOF
}

if [[ $MODE == prepare ]]; then
    PYTHON=${PYTHON:-$REPO/.venv/bin/python}
    step "kit: wheels into $KIT/wheels"
    rm -rf "$KIT/wheels" && mkdir -p "$KIT/wheels"
    # Built from a copy, so the checkout gets no build/ or egg-info.
    src=$(mktemp -d)
    cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/thne" "$src/"
    find "$src" -name __pycache__ -prune -exec rm -rf {} +
    "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w "$KIT/wheels" "$src"
    rm -rf "$src"
    for spec in ${GPU_CHECK_EXTRA_WHEELS:-}; do
        # Pure-Python wheels only (py3-none-any): they install under any Python 3.
        "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation py --abi none --platform any -d "$KIT/wheels" "$spec"
    done
    ls -l "$KIT/wheels"
    step "kit: the demo's text encoder, float16, into $KIT/encoder"
    rm -rf "$KIT/encoder"
    "$PYTHON" - "$KIT/encoder" <<'PY'
import shutil
import sys
from pathlib import Path

from safetensors.torch import save_file

from thne.text.loader import WEIGHTS_FILE, load_text_encoder, local_dir

name, out = "all-MiniLM-L6-v2", Path(sys.argv[1])
out.mkdir(parents=True)
# The weights travel in float16 (thne loads an encoder's weights as float32); the config and
# tokenizer files as shipped.
model, _ = load_text_encoder(name)
save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, out / WEIGHTS_FILE)
for file in local_dir(name).iterdir():
    if file.is_file() and file.name != WEIGHTS_FILE:
        shutil.copy(file, out / file.name)
PY
    step "demo inputs (Snakemake, on these CPUs) into $KIT/demo"
    (cd "$REPO" && "$(dirname "$PYTHON")/snakemake" --cores "$(nproc)" "${DEMO_INPUTS[@]}" \
        ${CONFIGFILE:+--configfile "$CONFIGFILE"} >/dev/null)
    # Only the files the check reads: the demo's extraction shards and logs stay behind.
    rm -rf "$KIT/demo"
    for f in "${DEMO_INPUTS[@]}"; do
        mkdir -p "$KIT/demo/$(dirname "$f")" && cp "$REPO/$f" "$KIT/demo/$f"
    done
    du -sh "$KIT"/*
    total=$(du -sm "$KIT" | cut -f1)
    # A call to the GPU machine carries 64 MiB, the checkout (about 6 MiB) included.
    if ((total > 56)); then
        echo "the kit $KIT takes $total MiB: over the 56 MiB one call carries beside the" \
            "checkout" >&2
        exit 1
    fi
    echo "ready ($total MiB): on the GPU machine run  bash benchmarks/gpu_check.sh"
    exit 0
fi

step "machine"
uname -srm
echo "CPUs: $(nproc)"
if [[ $MODE == check ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,compute_mode \
        --format=csv ||
        echo "nvidia-smi failed" >&2
fi

step "python"
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "no $PYTHON on PATH (give --python)" >&2; exit 1; }
"$PYTHON" -c 'import sys, torch; print(sys.executable, sys.version.split()[0]); print("torch",
      torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
if [[ $MODE == check ]]; then
    "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' || {
        echo "$PYTHON's torch is not a CUDA build that sees a GPU; give --python" >&2
        exit 1
    }
fi

step "offline install of the kit's wheels"
shopt -s nullglob
wheels=("$KIT"/wheels/*.whl)
if ((${#wheels[@]} == 0)); then
    prepare_help
    exit 1
fi
SITE=$(mktemp -d /tmp/thne-gpu-check-site.XXXXXX)
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
    --target "$SITE" "${wheels[@]}"
export PYTHONPATH=$SITE
echo "installed from $KIT/wheels into $SITE: $(cd "$KIT/wheels" && echo *.whl)"
# -P: not from the current folder, so thne is the installed one.
"$PYTHON" -P - <<'PY' || {
import importlib
import sys

missing = []
for name in ("torch", "transformers", "h5py", "numpy", "pandas", "yaml", "tqdm"):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        missing.append(f"{name} ({exc})")
import thne

print(f"thne from {thne.__file__}")
import transformers

print(f"transformers {transformers.__version__}")
if missing:
    sys.exit("missing: " + ", ".join(missing))
PY
    echo "add a wheel of each missing pure-Python package to the kit:" >&2
    echo "  GPU_CHECK_EXTRA_WHEELS='name==version ...' bash benchmarks/gpu_check.sh --prepare" >&2
    exit 1
}

cd "$REPO"
if ! wanted speed; then
    :
elif [[ $MODE == dry ]]; then
    step "training speed on cpu (dry run: one batch of 4 MOSI-shaped clips, MiniLM)"
    "$PYTHON" benchmarks/train_speed.py --device cpu --encoders minilm --datasets mosi --steps 1 \
        --batch-size 4
    step "operations per training step on cpu (dry run: MOSI-shaped, MiniLM)"
    "$PYTHON" benchmarks/step_ops.py --device cpu --encoders minilm --datasets mosi --steps 1
else
    step "training speed on cuda (synthetic MOSI and MOSEI epochs)"
    "$PYTHON" benchmarks/train_speed.py --device cuda --encoders bert-base,minilm \
        --datasets mosi,mosei
    step "operations per training step on cuda; host CPU time beside wall time"
    "$PYTHON" benchmarks/step_ops.py --device cuda --steps 20
fi

if wanted agreement; then
    step "demo t-HNE: GPU seed 1 beside CPU seeds 1-3"
    missing=()
    for f in "${DEMO_INPUTS[@]}"; do [[ -f $KIT/demo/$f ]] || missing+=("$KIT/demo/$f"); done
    [[ -f $KIT/encoder/config.json ]] || missing+=("$KIT/encoder")
    if [[ $MODE == dry ]]; then
        echo "dry run: not trained; inputs missing here: ${missing[*]:-none}"
        echo "would run: $PYTHON benchmarks/device_agreement.py --device cuda --reference cpu" \
            "--seeds 1 --reference-seeds 1,2,3 --root $KIT/demo --encoder $KIT/encoder" \
            "--out $OUTDIR/device_agreement"
    else
        if ((${#missing[@]})); then
            echo "missing: ${missing[*]}" >&2
            prepare_help
            exit 1
        fi
        "$PYTHON" benchmarks/device_agreement.py --device cuda --reference cpu --seeds 1 \
            --reference-seeds 1,2,3 --root "$KIT/demo" --encoder "$KIT/encoder" \
            --out "$OUTDIR/device_agreement"
    fi
fi

if ! wanted packed; then
    :
elif [[ $MODE == dry ]]; then
    step "packed jobs on cpu (dry run: 1 and 2 MiniLM-sized MOSI jobs, one batch of 4 each)"
    "$PYTHON" benchmarks/packed_throughput.py --dry-run --datasets mosi \
        --out "$OUTDIR/packed_throughput"
else
    # What is left of the limit, less a margin for the workers to stop.
    left=$((LIMIT - (SECONDS - START) - 15))
    step "packed jobs on cuda:0 (1, 2, 4, 8 MOSI- then MOSEI-size jobs; ${left} s left)"
    if ((left < 30)); then
        echo "skipped: ${left} s left of GPU_CHECK_LIMIT=$LIMIT; run it in a call of its own:" \
            "bash benchmarks/gpu_check.sh --only packed"
    else
        "$PYTHON" benchmarks/packed_throughput.py --device cuda:0 --budget "$left" \
            --out "$OUTDIR/packed_throughput"
    fi
fi

step "done"
