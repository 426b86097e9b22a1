import json
import struct

import numpy as np
import pytest

from fwbench_runner.safetensors import load_tensors


def write(path, tensors, metadata=None, pad_to=8):
    """A reference writer laid out like workloads/safetensors.ts (header padded so data is 8-byte aligned)."""
    header, blobs, offset = {"__metadata__": metadata or {}}, [], 0
    for name, (dtype, array) in tensors.items():
        data = array.astype({"F32": "<f4", "I32": "<i4"}[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header)
    text += " " * ((pad_to - (8 + len(text)) % pad_to) % pad_to)
    path.write_bytes(struct.pack("<Q", len(text)) + text.encode() + b"".join(blobs))


def test_reads_f32_and_i32_tensors_with_shapes_order_and_metadata(tmp_path):
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    t = np.array([[1, -2, 3]], dtype=np.int32)
    write(tmp_path / "a.safetensors", {"w": ("F32", w), "tokens": ("I32", t)}, {"family": "rnn"})
    tensors, meta = load_tensors(tmp_path / "a.safetensors")
    assert list(tensors) == ["w", "tokens"]
    assert tensors["w"].dtype == np.float32 and tensors["w"].shape == (2, 3, 4)
    np.testing.assert_array_equal(tensors["w"], w)
    np.testing.assert_array_equal(tensors["tokens"], t)
    assert meta == {"family": "rnn"}


def test_unaligned_data_section_still_reads(tmp_path):
    w = np.linspace(-1, 1, 5, dtype=np.float32)
    write(tmp_path / "u.safetensors", {"w": ("F32", w)}, pad_to=1)
    np.testing.assert_array_equal(load_tensors(tmp_path / "u.safetensors")[0]["w"], w)


def test_rejects_unknown_dtypes_and_truncated_files(tmp_path):
    p = tmp_path / "bad.safetensors"
    text = json.dumps({"x": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})
    p.write_bytes(struct.pack("<Q", len(text)) + text.encode() + b"\0\0")
    with pytest.raises(ValueError, match="F16"):
        load_tensors(p)
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(ValueError, match="too short"):
        load_tensors(tmp_path / "short")
    (tmp_path / "long").write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match="bad header length"):
        load_tensors(tmp_path / "long")
