#!/usr/bin/env bash
# Runs the whole benchmark for every engine and writes bench/results/bench-{opencv,dlib,fusion}.json.
#   bench/run.sh [FACESET] [extra `facegate bench` options...]
# FACESET defaults to $FACEGATE_DEV_FACES or ../shared/faces/dev. Run it on an otherwise idle machine: every
# report records how much CPU other processes used while it ran (other_load).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
fi
faceset="${1:-${FACEGATE_DEV_FACES:-../shared/faces/dev}}"
shift || true

python -m pip install --quiet --no-deps -r bench/requirements.txt
face_recognition --help >/dev/null  # the baseline must run here (it imports pkg_resources: setuptools<81)

mkdir -p bench/results
for engine in opencv dlib fusion; do
    facegate bench "$faceset" --engine "$engine" --output "bench/results/bench-$engine.json" "$@"
done
facegate bench-table bench/results/bench-opencv.json bench/results/bench-dlib.json bench/results/bench-fusion.json
