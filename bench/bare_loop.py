"""The bare side of bench/overhead.ts for the Python engines: the model and inputs a harness cell
uses, timed by a plain loop written directly against PyTorch or TensorFlow, with none of the
runner's code (stopping rule, protocol, BuiltModel.run) in or around the loop.

The model is built (and traced or compiled, as the runner does) with the engine's own package,
fwbench_runner.torch or fwbench_runner.tensorflow (neither is measured); each timed iteration is one forward pass on the host input plus the
copy of the logits to a NumPy array, as the runner does: torch `fn(x).numpy()` under inference_mode, TensorFlow `fn(x).numpy()`.

With "blocks", one process alternates blocks of the runner's own timed loop (BuiltModel.run
under fwbench_runner.measure, stopping rule included, inside BuiltModel.session) with blocks of
the bare loop on the same model, so both meet the same machine state (bench/bare-loop.ts does the
same for the Node engines).

Usage: python bench/bare_loop.py '<JSON job>' (PYTHONPATH=python-runners); prints one JSON line.
"""
import json
import sys
import time

from fwbench_runner.engine import BuildRequest
from fwbench_runner.measure import DEFAULT_MEASURE, measure, median_ci
from fwbench_runner.runner import load_engine
from fwbench_runner.safetensors import load_tensors

#: Harness blocks in same-process mode: the default rule with shorter bounds (as BLOCK_MEASURE in bare-loop.ts).
BLOCK_MEASURE = {**DEFAULT_MEASURE, "minSamples": 10, "minTimeMs": 200, "maxTimeMs": 600}


def iteration_for(job):
    weights, _ = load_tensors(job["weightsPath"])
    native = load_tensors(job["nativeWeightsPath"])[0] if "nativeWeightsPath" in job else None
    inputs, _ = load_tensors(job["inputsPath"])
    batch = next(iter(inputs.values())).shape[0]
    req = BuildRequest(job["family"], job["params"], batch, weights, native, "cpu", job["mode"], job["threads"])
    built = load_engine(job["engine"]).build(req)
    if job["engine"] == "torch":
        import torch

        guard = torch.inference_mode
    else:
        import tensorflow as tf

        guard = lambda: tf.device("/CPU:0")  # noqa: E731
    x = built.prepare(inputs)
    if built.compiles:
        with built.session():
            built.compile(x)
    return built, x, guard


def bare_loop(fn, x, n):
    """The plain timed loop: one forward pass and the logits as a NumPy array per iteration."""
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        t0 = clock()
        fn(x).numpy()
        samples[i] = clock() - t0
    return samples


def blocks(job, built, x, guard):
    """Same-process mode: runner blocks (its session, run and measure) alternating with bare blocks."""
    harness, bare = [], []
    n = job["samples"]
    for b in range(job["blocks"]):
        order = ("harness", "bare") if b % 2 == 0 else ("bare", "harness")
        for side in order:
            if side == "harness":
                with built.session():
                    r = measure(lambda: built.run(x), BLOCK_MEASURE)
                n = len(r["samplesNs"])
                harness.append(median_ci(r["samplesNs"])["medianNs"])
            else:
                with guard():
                    bare.append(median_ci(bare_loop(built.fn, x, n))["medianNs"])
    return {"harnessBlocksNs": harness, "bareBlocksNs": bare}


def main():
    job = json.loads(sys.argv[1])
    built, x, guard = iteration_for(job)
    clock = time.perf_counter_ns
    with guard():
        warmup = 0
        start = clock()
        while warmup < 3 or (clock() - start) < job["warmupMs"] * 1e6:
            built.fn(x).numpy()
            warmup += 1
    if job.get("blocks"):
        result = {"samplesNs": [], "warmupIters": warmup, **blocks(job, built, x, guard)}
    else:
        with guard():
            result = {"samplesNs": bare_loop(built.fn, x, job["samples"]), "warmupIters": warmup}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
