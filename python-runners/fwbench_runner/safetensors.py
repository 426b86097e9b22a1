"""Minimal safetensors reader (the files workloads/safetensors.ts writes): an 8-byte little-endian
header length, a JSON header of {name: {dtype, shape, data_offsets}} plus optional
`__metadata__`, then raw little-endian data. numpy only, so the common loop loads no framework."""

import json
import struct

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "I32": np.dtype("<i4"), "F64": np.dtype("<f8")}


def load_tensors(path):
    """Returns ({name: ndarray} in file order, metadata). Arrays are read-only views of one buffer."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    if header_len > len(raw) - 8:
        raise ValueError(f"{path}: not a safetensors file (bad header length)")
    header = json.loads(raw[8 : 8 + header_len].decode("utf-8"))
    base = 8 + header_len
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, entry in header.items():
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {entry['dtype']}; fwbench reads F32, I32 and F64")
        begin, end = entry["data_offsets"]
        count = (end - begin) // dtype.itemsize
        if count != int(np.prod(entry["shape"], dtype=np.int64)):
            raise ValueError(f"{path}: tensor {name} has {count} values for shape {entry['shape']}")
        tensors[name] = np.frombuffer(raw, dtype=dtype, count=count, offset=base + begin).reshape(entry["shape"])
    return tensors, metadata
