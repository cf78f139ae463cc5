#!/usr/bin/env bash
# Run OpenFace 2.x FeatureExtraction once over the media files of one shard.
#
#   openface_run.sh PLAN OUT_DIR [BINARY] [THREADS]
#
# PLAN is a TSV with the header "input<TAB>media": each media file is linked as
# OUT_DIR/inputs/<input>, so every CSV gets a unique name, OUT_DIR/<input stem>.csv, even where
# media files share a name (MMSA copies reuse 1.mp4 in every video folder).
#
# It needs nothing but bash and coreutils, so it also runs inside the OpenFace container image
# (docker://algebr/openface:latest), which holds no Python. The Snakemake rule runs it as a
# bash `script:`; thne.features.openface runs it directly. The CSVs are read by
# thne.features.openface, which checks each one.
#
# OpenFace is looked up in this order: BINARY (when given, it must be executable), then
# FeatureExtraction on PATH, then the container image's build.
#
# OpenFace exits 0 even when it cannot open an input, and stops at the first input it cannot
# open without trying the later ones. So inputs whose media does not exist are kept out of the
# call, and when an input still gets no CSV, it is recorded as failed and the inputs after it
# run again in a further call. OUT_DIR/failed.tsv lists (input, reason) of the failed ones.
#
# When OpenFace itself exits non-zero, every input of that call is recorded as failed: a crash
# may leave a CSV that looks complete, so none of that call's is trusted.
#
# Exit status: 0 done (failed.tsv may list inputs), 2 usage, 3 no usable OpenFace found.
set -euo pipefail

if [[ $# -eq 0 && -n "${snakemake_output[0]:-}" ]]; then
    # Run as a Snakemake script: arguments come from the rule.
    set -- "${snakemake_params[plan]}" "${snakemake_output[0]}" \
        "${snakemake_params[binary]:-}" "${snakemake[threads]:-1}"
    exec >"${snakemake_log[0]}" 2>&1
fi

if [[ $# -lt 2 || $# -gt 4 ]]; then
    echo "usage: $0 PLAN OUT_DIR [BINARY] [THREADS]" >&2
    exit 2
fi
plan=$1
out_dir=$2
configured=${3:-}
threads=${4:-1}
container_binary=/home/openface-build/build/bin/FeatureExtraction

if [[ ! -f $plan ]]; then
    echo "openface_run.sh: plan $plan does not exist" >&2
    exit 2
fi

binary=""
tried=()
if [[ -n $configured ]]; then
    if binary=$(command -v -- "$configured") && [[ -x $binary && ! -d $binary ]]; then
        :
    else
        echo "OpenFace FeatureExtraction: visual.openface_bin '$configured' is not an" \
            "executable file here (inside a container only the working directory is visible;" \
            "leave openface_bin unset to use the container's OpenFace)" >&2
        exit 3
    fi
elif binary=$(command -v FeatureExtraction); then
    :
elif [[ -x $container_binary ]]; then
    binary=$container_binary
else
    tried+=("visual.openface_bin: not set")
    tried+=("FeatureExtraction on PATH: not found (PATH=$PATH)")
    tried+=("$container_binary (its place in docker://algebr/openface:latest): does not exist")
    {
        echo "OpenFace FeatureExtraction not found. Tried, in order:"
        for i in "${!tried[@]}"; do echo "  $((i + 1)). ${tried[$i]}"; done
        echo "Provide it in one of these ways: set datasets.<ds>.visual.openface_bin to the path" \
            "of FeatureExtraction; put FeatureExtraction on PATH (build OpenFace 2.x from" \
            "https://github.com/TadasBaltrusaitis/OpenFace); or run Snakemake with" \
            "--sdm apptainer so the rule runs inside docker://algebr/openface:latest."
    } >&2
    exit 3
fi

mkdir -p "$out_dir/inputs"
failed=$out_dir/failed.tsv
printf 'input\treason\n' >"$failed"

pending=()
first=1
while IFS=$'\t' read -r input media || [[ -n $input ]]; do
    if ((first)); then
        first=0
        if [[ $input != input || $media != media ]]; then
            echo "openface_run.sh: $plan: header is not 'input<TAB>media'" >&2
            exit 2
        fi
        continue
    fi
    [[ -z $input ]] && continue
    rm -f -- "$out_dir/${input%.*}.csv" "$out_dir/inputs/$input"
    if [[ ! -f $media ]]; then
        printf '%s\tmedia file %s does not exist here (OpenFace not run)\n' \
            "$input" "$media" >>"$failed"
        continue
    fi
    case $media in
        /*) target=$media ;;
        *) target=$PWD/$media ;;
    esac
    ln -s -- "$target" "$out_dir/inputs/$input"
    pending+=("$input")
done <"$plan"

export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
export OPENCV_FOR_THREADS_NUM=$threads

while ((${#pending[@]})); do
    cmd=("$binary")
    for input in "${pending[@]}"; do cmd+=(-f "$out_dir/inputs/$input"); done
    cmd+=(-out_dir "$out_dir" -aus -pose -gaze -2Dfp -3Dfp -pdmparams -q)
    echo "\$ ${cmd[*]}"
    status=0
    "${cmd[@]}" </dev/null || status=$?
    if ((status != 0)); then
        # A crash may leave a CSV cut at a row boundary that looks complete: trust none of
        # this call's, and let the bad-clip policy decide about its inputs.
        echo "OpenFace ($binary) exited with code $status while processing" \
            "${#pending[@]} input(s); none of them is used"
        for input in "${pending[@]}"; do
            rm -f -- "$out_dir/${input%.*}.csv"
            printf '%s\tOpenFace (%s) exited with code %s while processing this and %s other input(s)\n' \
                "$input" "$binary" "$status" "$((${#pending[@]} - 1))" >>"$failed"
        done
        break
    fi
    # The first input without a CSV is the one OpenFace gave up at: record it and run the
    # unprocessed rest again. Each round removes at least one input, so this ends.
    rest=()
    gave_up=""
    for input in "${pending[@]}"; do
        if [[ -z $gave_up ]]; then
            if [[ ! -f $out_dir/${input%.*}.csv ]]; then
                gave_up=$input
                printf '%s\tOpenFace wrote no CSV (it exits 0 even when it cannot open or decode a video)\n' \
                    "$input" >>"$failed"
            fi
        elif [[ ! -f $out_dir/${input%.*}.csv ]]; then
            rest+=("$input")
        fi
    done
    pending=("${rest[@]}")
done
echo "OpenFace done: $(($(wc -l <"$failed") - 1)) input(s) failed; see $failed"
