"""The bare side of bench/overhead.ts for the Python engines: the model and inputs a harness cell
uses, timed by a plain loop written directly against PyTorch or TensorFlow, with none of the
runner's code (stopping rule, protocol, BuiltModel.run) in or around the loop.

The model is built with the engine's own builder module (building is not measured); each timed
iteration is one forward pass on the host input plus the copy of the logits to a NumPy array, as
the runner does: torch `fn(x).numpy()` under inference_mode, TensorFlow `fn(x).numpy()`.

Usage: python bench/bare_loop.py '<JSON job>' (PYTHONPATH=python-runners); prints one JSON line.
"""
import json
import sys
import time

from fwbench_runner.engine import BuildRequest
from fwbench_runner.safetensors import load_tensors


def iteration_for(job):
    weights, _ = load_tensors(job["weightsPath"])
    native = load_tensors(job["nativeWeightsPath"])[0] if "nativeWeightsPath" in job else None
    inputs, _ = load_tensors(job["inputsPath"])
    batch = next(iter(inputs.values())).shape[0]
    req = BuildRequest(job["family"], job["params"], batch, weights, native, "cpu", job["mode"], job["threads"])
    if job["engine"] == "torch":
        import torch

        from fwbench_runner import torch_engine

        built = torch_engine.build(req)
        fn = built.fn
        x = built.prepare(inputs)
        guard = torch.inference_mode
    else:
        import tensorflow as tf

        from fwbench_runner import tensorflow_engine

        built = tensorflow_engine.build(req)
        fn = built.fn
        x = built.prepare(inputs)
        guard = lambda: tf.device("/CPU:0")  # noqa: E731
    return fn, x, guard


def main():
    job = json.loads(sys.argv[1])
    fn, x, guard = iteration_for(job)
    clock = time.perf_counter_ns
    samples = [0] * job["samples"]
    with guard():
        warmup = 0
        start = clock()
        while warmup < 3 or (clock() - start) < job["warmupMs"] * 1e6:
            fn(x).numpy()
            warmup += 1
        for i in range(job["samples"]):
            t0 = clock()
            fn(x).numpy()
            samples[i] = clock() - t0
    sys.stdout.write(json.dumps({"samplesNs": samples, "warmupIters": warmup}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
