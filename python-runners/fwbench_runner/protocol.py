"""The worker protocol on fd 3: line-delimited JSON, every message validated against
results/schema/protocol.schema.json (generated from harness/worker/protocol.ts, the single definition),
and a job's cell against the identity lists of results/schema/manifest.json."""

import json
import sys
from pathlib import Path

from .manifest import SCHEMA_DIR, check_cell

try:
    import jsonschema
except ModuleNotFoundError as e:  # e.g. a distribution's python3 chosen through FWBENCH_PYTHON
    raise SystemExit(
        f"fwbench runner: {sys.executable} lacks the Python package '{e.name}' (the runner validates every protocol message); "
        "install python-runners/requirements-cpu.txt into it, or unset FWBENCH_PYTHON to use python-runners/.venv (bash python-runners/setup.sh)"
    ) from e

PROTOCOL_VERSION = 1
SCHEMA_PATH = SCHEMA_DIR / "protocol.schema.json"


def validators(path=SCHEMA_PATH):
    """(to-worker validator, from-worker validator) from the published schema."""
    defs = json.loads(Path(path).read_text(encoding="utf-8"))["$defs"]
    return jsonschema.Draft202012Validator(defs["toWorker"]), jsonschema.Draft202012Validator(defs["fromWorker"])


class Channel:
    """One connected stream socket (the orchestrator's end is a Unix socketpair)."""

    def __init__(self, sock, schema_path=SCHEMA_PATH):
        self.sock = sock
        self.lines = sock.makefile("rb")
        self.to_worker, self.from_worker = validators(schema_path)

    def send(self, msg):
        self.from_worker.validate(msg)
        # allow_nan=False: NaN/Infinity are not JSON; an engine producing them fails loudly here.
        self.sock.sendall((json.dumps(msg, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8"))

    def receive(self):
        line = self.lines.readline()
        if not line:
            raise EOFError("orchestrator closed the channel")
        msg = json.loads(line)
        if isinstance(msg, dict) and msg.get("type") == "job" and isinstance(msg.get("cell"), dict):
            # Before the schema, whose message for a value outside an enum spans many lines.
            check_cell(msg["cell"])
        self.to_worker.validate(msg)
        return msg

    def close(self):
        self.lines.close()
        self.sock.close()
