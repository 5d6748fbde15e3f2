#!/usr/bin/env bash
# One engine through compose.yaml, its results folder writable by the container's user alone:
#   scripts/compose-run.sh ort                (or: make compose ENGINE=ort)
#   CPUSET=0-1 MEMORY_GB=4 MODEL=base PRECISION=int8 scripts/compose-run.sh faster-whisper
# The folder ${COMPOSE_RESULTS:-results/compose}/<engine>-<model>-<precision>/ is made here, mode 0755,
# before Docker would make it root's. Run as a user, the container runs as you (RUN_AS=uid:gid) and the
# folder is yours; run as root, the container keeps the image's unprivileged user (1000:1000) and the
# folder is given to that user, as the harness does with its own output folders. No folder is world-writable.
# The container wrote everything in the folder: anything there that is not a regular file (a link, a FIFO)
# is named and the exit status is 1; read its files as data and follow no link in it.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "error: $*" >&2; exit 2; }
safe() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; }

engine=${1:-}
[ $# -eq 1 ] && safe "$engine" || fail "usage: scripts/compose-run.sh ENGINE (one service of compose.yaml)"
grep -q "^  $engine:\$" compose.yaml || fail "compose.yaml has no service $engine"
model=${MODEL:-tiny.en}
# The engine's default precision, from the specs compose.yaml is generated from (standard library only).
precision=${PRECISION:-$(python3 -c 'import sys; from engines.registry import SPECS; print(SPECS[sys.argv[1]].default_variant)' "$engine")}
safe "$model" || fail "MODEL=$model is not a safe folder name"
safe "$precision" || fail "PRECISION=$precision is not a safe folder name"

if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose)
else fail "neither \`docker compose\` nor \`docker-compose\` is installed (scripts/ensure-docker.sh installs it)"
fi

results=${COMPOSE_RESULTS:-./results/compose}
dir="$results/$engine-$model-$precision"
umask 022
mkdir -p "$dir"
[ -d "$dir" ] && [ ! -L "$dir" ] || fail "$dir is not a folder"
if [ "$(id -u)" -eq 0 ]; then
    run_as=${RUN_AS:-1000:1000}
    chown -h "$run_as" "$dir"
else
    run_as=${RUN_AS:-$(id -u):$(id -g)}
fi
chmod 0755 "$dir"   # a folder left world-writable by an older recipe is closed too

status=0
COMPOSE_RESULTS=$results MODEL=$model PRECISION=$precision RUN_AS=$run_as \
    "${compose[@]}" run --rm "$engine" || status=$?
odd=$(find "$dir" -mindepth 1 ! -type f -printf '%P (%y) ')
if [ -n "$odd" ]; then
    echo "error: $dir holds what is not a regular file (the container made it): ${odd% }" >&2
    exit 1
fi
exit "$status"
