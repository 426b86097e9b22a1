"""What the machine did while a timed loop ran, read the way harness/worker/load.ts reads it (see
there): the runner's own CPU time and involuntary context switches (getrusage, every thread), and the
cores the whole machine kept busy and lost to steal, from /proc/stat."""

import resource
import time


def parse_proc_stat(text):
    """The aggregate `cpu` line of /proc/stat as busy, total and steal ticks, with the core count; None if absent."""
    lines = text.split("\n")
    line = next((entry for entry in lines if entry.startswith("cpu ")), None)
    if line is None:
        return None
    try:
        v = [int(x) for x in line.split()[1:9]]
    except ValueError:
        return None
    if len(v) < 4:
        return None
    total = sum(v)
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    cores = sum(1 for entry in lines if entry.startswith("cpu") and entry[3:4].isdigit())
    return {"busy": total - idle, "total": total, "steal": v[7] if len(v) > 7 else 0, "cores": cores}


def _read_stat():
    try:
        with open("/proc/stat", encoding="ascii") as f:
            return parse_proc_stat(f.read())
    except OSError:
        return None


def watch_load():
    """Starts watching; the returned function gives the `load` fields of the samples message."""
    stat0, usage0, wall0 = _read_stat(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter_ns()

    def done():
        wall1 = time.perf_counter_ns()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        stat1 = _read_stat()
        load = {
            "wallMs": (wall1 - wall0) / 1e6,
            "ownCpuMs": (usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime) * 1000,
            "involuntarySwitches": usage1.ru_nivcsw - usage0.ru_nivcsw,
        }
        if stat0 and stat1 and stat1["total"] > stat0["total"] and stat1["cores"] > 0:
            dt = stat1["total"] - stat0["total"]
            cores = stat1["cores"]
            load["machine"] = {
                "cores": cores,
                "busyCores": (stat1["busy"] - stat0["busy"]) / dt * cores,
                "stealCores": (stat1["steal"] - stat0["steal"]) / dt * cores,
            }
        return load

    return done
