"""Peak kernels of the Python runner (fwbench peak) and the BLAS probe of fwbench doctor."""

from fwbench_runner.blas_info import mapped_blas_libs
from fwbench_runner.peak import PeakRequest, figures, median_ms
from fwbench_runner.runner import load_engine


def test_median_and_figures():
    calls = []
    ms = median_ms(lambda: calls.append(1), 10)
    assert ms >= 0 and len(calls) >= 2 + 3
    req = PeakRequest("cpu", 1, 100, 1000, 10)
    f = figures(req, 1.0, 2.0, {"threads": 1})
    assert f["gemmGflops"] == 2 * 100**3 / 1e-3 / 1e9
    assert f["copyBytes"] == 8000 and f["copyGBps"] == 8000 / 2e-3 / 1e9
    assert f["details"] == {"threads": "1"}


def test_torch_peak_positive():
    f = load_engine("torch").peak(PeakRequest("cpu", 1, 128, 1 << 16, 50))
    assert f["gemmGflops"] > 0 and f["copyGBps"] > 0 and f["gemmN"] == 128


def test_mapped_blas_libs_from_maps_file(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /usr/lib/libc.so.6\n"
        "7f04-7f05 rw-p 00000000 00:00 0\n"
    )
    assert mapped_blas_libs(str(maps)) == ["/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"]
