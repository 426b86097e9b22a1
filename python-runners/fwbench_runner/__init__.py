"""fwbench's Python runner: the PyTorch and TensorFlow side of the worker protocol (see harness/worker/protocol.ts)."""
