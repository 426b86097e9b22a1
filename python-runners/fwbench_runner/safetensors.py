"""Minimal safetensors reader and writer (the format workloads/safetensors.ts writes): an 8-byte
little-endian header length, a JSON header of {name: {dtype, shape, data_offsets}} plus optional
`__metadata__`, then raw little-endian data. numpy only, so the common loop loads no framework."""

import json
import os
import struct
import tempfile

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


def save_tensors(path, tensors, metadata=None):
    """Writes {name: ndarray} (float32 -> F32, int32 -> I32, float64 -> F64, in dict order) with
    `metadata` ({str: str}) as the header's `__metadata__`; the header is padded with spaces so the
    data starts 8-byte aligned, as workloads/safetensors.ts does. Atomic: a temporary file in the
    same folder, flushed to disk, then renamed over `path`, so a reader never sees half a file."""
    header, arrays, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, array in tensors.items():
        a = np.asarray(array)
        dtype = next((code for code, d in DTYPES.items() if a.dtype == d.newbyteorder("=")), None)
        if dtype is None:
            raise ValueError(f"tensor {name} has dtype {a.dtype}; fwbench writes float32, int32 and float64")
        data = np.ascontiguousarray(a, dtype=DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        arrays.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for data in arrays:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
