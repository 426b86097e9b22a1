"""Peak resident set size (VmHWM), read the way harness/worker/memory.ts reads it. Not
ru_maxrss: on Linux a child inherits its parent's high-water mark through exec."""

import re


def peak_host_bytes(status_path="/proc/self/status"):
    with open(status_path, encoding="utf-8") as f:
        m = re.search(r"^VmHWM:\s+(\d+)\s+kB$", f.read(), re.MULTILINE)
    if not m:
        raise ValueError(f"{status_path} has no VmHWM line")
    return int(m.group(1)) * 1024
