#!/usr/bin/env bash
# A busy neighbour halfway through a run (issue 17; docs/methodology.md "Busy machines"):
# runs bert-mini batch 1 on torch and tensorflow (their default modes, 3 replicates per cell) and,
# DELAY seconds after the start, one CPU-bound process (`python3 -c 'while True: pass'`) for BUSY
# seconds. Prints the run's table and answer; run.json keeps every replicate's figures.
#
# Usage: bash bench/busy-neighbour.sh OUT_DIR [FWBENCH_JS] [DELAY_S] [BUSY_S]
#   FWBENCH_JS: the fwbench to run (default bin/fwbench.js of this checkout), e.g. an older build's.
set -euo pipefail
out=${1:?usage: bench/busy-neighbour.sh OUT_DIR [FWBENCH_JS] [DELAY_S] [BUSY_S]}
bin=${2:-bin/fwbench.js}
delay=${3:-25}
busy=${4:-20}
start=$(date +%s)
node "$bin" run --engines torch,tensorflow --workloads transformer --preset bert-mini --batch-sizes 1 --replicates 3 --out "$out" &
run=$!
sleep "$delay"
python3 -c 'while True: pass' &
hog=$!
echo "busy-neighbour: CPU-bound pid $hog from $(( $(date +%s) - start )) s for $busy s" >&2
sleep "$busy"
kill "$hog"
echo "busy-neighbour: stopped at $(( $(date +%s) - start )) s" >&2
wait "$run" || echo "busy-neighbour: fwbench exited $?" >&2
