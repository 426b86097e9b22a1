"""`python -m fwbench_runner.blas_info [threads]`: which BLAS PyTorch uses here, for `fwbench doctor`.
Prints JSON: version, torch.__config__.show(), the BLAS-like shared libraries mapped into this
process (/proc/self/maps, resolved through symlinks such as Debian's alternatives) and the rate
of a 512x512 FP32 GEMM (GFLOP/s, median of a few calls)."""

import json
import os
import re
import sys

from .peak import median_ms

BLAS_LIB = re.compile(r"(blas|lapack|mkl|blis|atlas)", re.IGNORECASE)


def mapped_blas_libs(maps_path="/proc/self/maps"):
    """Real paths of mapped shared libraries whose names look like a BLAS."""
    libs = set()
    try:
        with open(maps_path, encoding="utf-8") as f:
            for line in f:
                path = line.split(None, 5)[5].strip() if len(line.split(None, 5)) == 6 else ""
                if ".so" in path and BLAS_LIB.search(os.path.basename(path)):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def main(threads=None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    n = 512
    a, b = torch.rand(n, n), torch.rand(n, n)
    ms = median_ms(lambda: torch.mm(a, b), 300)
    return {
        "version": torch.__version__,
        "config": torch.__config__.show(),
        "libs": mapped_blas_libs(),
        "gemm512Gflops": 2 * n**3 / (ms / 1e3) / 1e9,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else None)))
