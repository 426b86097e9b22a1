import json
import struct

import numpy as np
import pytest

from fwbench_runner.safetensors import load_tensors, save_tensors


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


def test_save_tensors_round_trips_f32_i32_f64_aligned_and_atomically(tmp_path):
    tensors = {
        "grad/w": np.linspace(-1, 1, 7, dtype=np.float32).reshape(7, 1),
        "labels": np.array([3, 0, 9], dtype=np.int32),
        "step1/x": np.array([[1 / 3, -2e-300], [np.pi, 0.0]], dtype=np.float64),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    path = tmp_path / "p.safetensors"
    path.write_bytes(b"old")  # replaced whole
    save_tensors(path, tensors, {"family": "cnn", "steps": 3})
    back, meta = load_tensors(path)
    assert list(back) == list(tensors) and meta == {"family": "cnn", "steps": "3"}
    for name, a in tensors.items():
        assert back[name].dtype == a.dtype and back[name].shape == a.shape
        np.testing.assert_array_equal(back[name], a)
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    assert (8 + header_len) % 8 == 0 and raw[8 : 8 + header_len].rstrip(b" ").endswith(b"}")
    # No temporary file is left behind, neither after a write nor after a refused one.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.safetensors"]
    with pytest.raises(ValueError, match="int64"):
        save_tensors(tmp_path / "bad.safetensors", {"x": np.zeros(2, dtype=np.int64)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.safetensors"]
