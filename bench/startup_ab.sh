#!/usr/bin/env bash
# Start-up of two versions side by side, rounds alternating between them (the VM's CPU speed drifts):
# `facegate enroll` of a folder holding one blank photo (engine start included) per engine, and `facegate people
# list`, each run whole under /usr/bin/time (wall, and the CPU of the command and its engine workers).
#
#   git worktree add /tmp/facegate-a <commit>
#   bench/startup_ab.sh /tmp/facegate-a/src src [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
old="$(realpath "$1")" new="$(realpath "$2")" rounds="${3:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/people/blank"
.venv/bin/python -c "from PIL import Image; Image.new('RGB', (32, 32)).save('$work/people/blank/1.jpg')"
timed() {  # label side src command...
    local label="$1" side="$2" src="$3"
    shift 3
    rm -rf "$work/data"
    /usr/bin/time -o "$work/time" -f "%e %U %S" env PYTHONPATH="$src" FACEGATE_DATA_DIR="$work/data" "$@" \
        >/dev/null 2>&1
    echo "$label $side $(cat "$work/time")"
}
for _ in $(seq "$rounds"); do
    for side in old new; do
        src="$old"
        [ "$side" = new ] && src="$new"
        for engine in opencv fusion; do
            timed "enroll-$engine" "$side" "$src" .venv/bin/facegate enroll "$work/people" --engine "$engine"
        done
        timed people-list "$side" "$src" .venv/bin/facegate people list
    done
done | .venv/bin/python -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    label, side, wall, user, system = line.split()
    runs[label, side].append((float(wall), float(user) + float(system)))
print("| command | side | wall s (median) | CPU s (median) |\n|---|---|---|---|")
for (label, side), values in sorted(runs.items()):
    wall = statistics.median(v[0] for v in values)
    cpu = statistics.median(v[1] for v in values)
    print(f"| {label} | {side} | {wall:.2f} | {cpu:.2f} |")
'
