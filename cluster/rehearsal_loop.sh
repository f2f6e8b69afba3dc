#!/usr/bin/env bash
# Runs the two-node cluster rehearsal N times in a row (default 10) while two busy processes
# hold the cores, as on a loaded CI machine; stops at the first failure.
#   bash cluster/rehearsal_loop.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
python=${PYTHON:-.venv/bin/python}
busy=()
for _ in 1 2; do
    "$python" -c 'while True: pass' &
    busy+=($!)
done
trap 'kill "${busy[@]}" 2>/dev/null || true' EXIT
echo "load: ${#busy[@]} busy processes (pids ${busy[*]}) on $(nproc) cores"
for run in $(seq 1 "$runs"); do
    started=$(date +%s)
    if "$python" -m pytest -q -p no:cacheprovider tests/test_cluster_rehearsal.py \
        -k test_sweep_on_two_nodes_survives_losing_one >"/tmp/rehearsal-run-$run.log" 2>&1; then
        echo "run $run/$runs passed in $(( $(date +%s) - started )) s (load $(cut -d' ' -f1 /proc/loadavg))"
    else
        echo "run $run/$runs FAILED after $(( $(date +%s) - started )) s; log: /tmp/rehearsal-run-$run.log"
        tail -40 "/tmp/rehearsal-run-$run.log"
        exit 1
    fi
done
echo "$runs passed, 0 failed"
