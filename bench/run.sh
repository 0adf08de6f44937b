#!/usr/bin/env bash
# The benchmark harness (bench/facegate_bench) on the dev set's large photos and the calib set's small ones, for
# the fusion (default) and opencv engines; writes bench/results/bench-{dev,calib}-{fusion,opencv}.json.
#   bench/run.sh [extra `python -m facegate_bench run` options, e.g. --engine dlib --quiet-wait 60]
# Face sets: $FACEGATE_DEV_FACES or ../shared/faces/dev, and $BENCH_CALIB_FACES or ../shared/faces/calib.
# Run it on an otherwise idle machine: every report records how much CPU other processes used (other_load).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
fi
dev="${FACEGATE_DEV_FACES:-../shared/faces/dev}"
calib="${BENCH_CALIB_FACES:-../shared/faces/calib}"

python -m pip install --quiet --no-deps -r bench/requirements.txt
face_recognition --help >/dev/null  # the baseline must run here (it imports pkg_resources: setuptools<81)

export PYTHONPATH="bench${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p bench/results
engines=(--engine fusion --engine opencv)
python -m facegate_bench run "$dev" --name dev "${engines[@]}" --output-dir bench/results "$@"
# Small photos: 2,302 probes are plenty for one pass; latency is measured on dev, bulk enroll on 400 photos of each.
python -m facegate_bench run "$calib" --name calib "${engines[@]}" --passes 1 --latency-requests 0 --enroll-max-photos 400 \
    --cli-ratio-target 3.5 --output-dir bench/results "$@"
python -m facegate_bench table bench/results/bench-{dev,calib}-{fusion,opencv}.json
