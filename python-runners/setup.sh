#!/usr/bin/env bash
# Creates python-runners/.venv and installs the CPU requirements into it. Idempotent: an existing
# venv is reused and pip skips what is already satisfied. FWBENCH_SETUP_PYTHON picks the base
# interpreter (default python3; 3.11 is what the pinned wheels are built for here).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
base="${FWBENCH_SETUP_PYTHON:-python3}"
start=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup.sh: creating $venv with $($base --version 2>&1)"
  "$base" -m venv "$venv"
else
  echo "setup.sh: reusing $venv ($("$venv/bin/python" --version 2>&1))"
fi
echo "setup.sh: installing $here/requirements-cpu.txt (torch, tensorflow-cpu, numpy, jsonschema, pytest)"
"$venv/bin/python" -m pip install --progress-bar off -r "$here/requirements-cpu.txt"
echo "setup.sh: checking the frameworks import"
"$venv/bin/python" -c 'import torch, tensorflow as tf, numpy, jsonschema; print(f"setup.sh: torch {torch.__version__}, tensorflow {tf.__version__}, numpy {numpy.__version__}")'
echo "setup.sh: done in $((SECONDS - start)) s; the runners use $venv/bin/python"
