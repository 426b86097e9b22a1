#!/usr/bin/env bash
# First step of `npm test`: installs the Debian packages the test suite uses, only those missing,
# and builds the tfjs-node addon if `npm run setup` could not (g++ or make was missing then).
# As root it runs apt-get, with passwordless sudo `sudo -n apt-get`; otherwise it stops with one
# line naming the missing packages and the command that installs them. Nothing is skipped: a
# suite without its real components would pass for the wrong reason.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each Debian package the tests need, with the check that tells it is installed.
declare -A HAS=(
  # HTML report tests open the report in real headless Chromium.
  [chromium]='command -v chromium'
  # Scheduler tests start a single-node Slurm (tests/daemons/slurm.sh) authenticated by munge.
  [slurm-wlm]='[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && command -v sbatch'
  [munge]='[ -x /usr/sbin/munged ]'
  # Scheduler tests start a loopback sshd (tests/daemons/sshd.sh).
  [openssh-server]='[ -x /usr/sbin/sshd ] && command -v ssh-keygen'
  # Debian's PyTorch on the reference BLAS: the condition `fwbench doctor` must flag (installed
  # without recommends, which would bring OpenBLAS).
  [python3-torch]='[ -f /usr/lib/python3/dist-packages/torch/__init__.py ]'
  # node-gyp builds the tfjs-node addon against the TensorFlow wheel.
  [g++]='command -v g++'
  [make]='command -v make'
  # prlimit: --max-memory-mb and the out-of-memory tests.
  [util-linux]='command -v prlimit'
)

missing() { for p in $(printf '%s\n' "${!HAS[@]}" | sort); do eval "${HAS[$p]}" >/dev/null 2>&1 || echo "$p"; done; }

mapfile -t need < <(missing)
if [ ${#need[@]} -gt 0 ]; then
  install=(apt-get install -y --no-install-recommends "${need[@]}")
  if ! command -v apt-get >/dev/null; then
    echo "test-deps: npm test needs the Debian packages ${need[*]} (or your system's equivalents), and this system has no apt-get: install them, then rerun npm test" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n)
  else
    echo "test-deps: npm test needs ${need[*]}; install them with: sudo apt-get update && sudo ${install[*]}" >&2
    exit 1
  fi
  echo "test-deps: installing ${need[*]} with apt-get (a few minutes the first time)"
  log=$(mktemp)
  start=$SECONDS
  if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${install[@]}" -qq; } >"$log" 2>&1 </dev/null; then
    tail -n 20 "$log" >&2
    echo "test-deps: apt-get failed (output above, full log $log); install by hand: ${install[*]}" >&2
    exit 1
  fi
  rm -f "$log"
  mapfile -t still < <(missing)
  if [ ${#still[@]} -gt 0 ]; then
    echo "test-deps: apt-get installed ${need[*]}, but ${still[*]} still fail their check (see scripts/test-deps.sh)" >&2
    exit 1
  fi
  echo "test-deps: installed in $((SECONDS - start)) s"
fi

if [ ! -x python-runners/.venv/bin/python ]; then
  echo "test-deps: python-runners/.venv is missing (the torch, tensorflow and pytest tests need it): run npm run setup first" >&2
  exit 1
fi

# `npm run setup` carries on without the addon when it cannot build it; the suite needs it.
tfjs=node_modules/@tensorflow/tfjs-node
if [ ! -f "$tfjs/deps/fwbench-libtensorflow.json" ] || ! compgen -G "$tfjs/lib/napi-v*/tfjs_binding.node" >/dev/null; then
  echo "test-deps: building the tfjs-node addon (npm run setup could not; about a minute)"
  node bin/fwbench.js setup tfjs-node
fi
