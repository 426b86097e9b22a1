#!/usr/bin/env bash
# Creates python-runners/.venv and installs the CPU requirements into it. Idempotent: an existing
# venv is reused and pip skips what is already satisfied. FWBENCH_SETUP_PYTHON picks the base
# interpreter (default python3; 3.11 is what the pinned wheels are built for here).
# FWBENCH_SETUP_DEVICE=cuda (the Dockerfile's cuda variant) installs the CUDA builds instead, the
# CUDA 11 libraries tfjs-node-gpu needs into python-runners/.cuda11, and onnxruntime-node's CUDA 12
# execution provider.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
base="${FWBENCH_SETUP_PYTHON:-python3}"
device="${FWBENCH_SETUP_DEVICE:-cpu}"
case "$device" in
  cpu | cuda) ;;
  *) echo "setup.sh: FWBENCH_SETUP_DEVICE must be cpu or cuda, got '$device'" >&2; exit 2 ;;
esac
start=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup.sh: creating $venv with $($base --version 2>&1)"
  "$base" -m venv "$venv"
else
  echo "setup.sh: reusing $venv ($("$venv/bin/python" --version 2>&1))"
fi
echo "setup.sh: installing $here/requirements-$device.txt (torch, tensorflow, numpy, jsonschema, pytest, ruff)"
"$venv/bin/python" -m pip install --progress-bar off -r "$here/requirements-$device.txt"
if [[ "$device" == cuda ]]; then
  echo "setup.sh: installing $here/requirements-cuda11.txt into $here/.cuda11 (CUDA 11 for tfjs-node-gpu only)"
  "$venv/bin/python" -m pip install --progress-bar off --upgrade --target "$here/.cuda11" -r "$here/requirements-cuda11.txt"
  # npm ci does not run onnxruntime-node's install script (allowScripts in package.json): fetch its
  # CUDA 12 execution provider here, unless npm (before 11) already ran it.
  ort="$here/../node_modules/onnxruntime-node"
  if [[ ! -e "$ort/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so" ]]; then
    echo "setup.sh: fetching onnxruntime-node's CUDA 12 execution provider (its own install script)"
    ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-cuda12}" node "$ort/script/install.js"
  fi
  echo "setup.sh: for tfjs-node-gpu: export FWBENCH_LD_LIBRARY_PATH_TFJS_NODE_GPU=$(ls -d "$here"/.cuda11/nvidia/*/lib | paste -sd:)"
fi
echo "setup.sh: checking the frameworks import"
"$venv/bin/python" -c 'import torch, tensorflow as tf, numpy, jsonschema; print(f"setup.sh: torch {torch.__version__}, tensorflow {tf.__version__}, numpy {numpy.__version__}")'
echo "setup.sh: done in $((SECONDS - start)) s; the runners use $venv/bin/python"
