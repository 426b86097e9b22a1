"""`python -m fwbench_runner`: one worker process per cell or probe, protocol on fd 3."""

import json
import os
import sys

try:
    from .runner import main
except ModuleNotFoundError as e:
    # The runner's own dependencies (numpy, jsonschema) are missing, so the validating channel
    # cannot exist: answer with a hand-written `error` line so the cell is skipped with the fix.
    fix = f"{sys.executable} -m pip install -r python-runners/requirements-cpu.txt (or: bash python-runners/setup.sh)"
    line = {
        "type": "error",
        "phase": "start",
        "message": f"the Python runner needs {e.name}, which is not installed for {sys.executable}",
        "unavailable": True,
        "fix": fix,
    }
    os.write(3, (json.dumps(line) + "\n").encode("utf-8"))
    sys.exit(0)

main()
