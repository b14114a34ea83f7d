"""Seeded model inputs from declared input types and shapes (numpy, imported by the backends that need it)."""

from __future__ import annotations

from typing import Any, Sequence

def np_dtype(np: Any, onnx_type: str) -> Any:
    table = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
             "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16,
             "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_}
    if onnx_type not in table:
        raise ValueError("input type %s is not supported by the agent's input generator" % onnx_type)
    return table[onnx_type]


def make_input(np: Any, rng: Any, name: str, shape: Sequence[int], dtype: Any) -> Any:
    """Seeded input: floats ~ N(0,1); integers 0/1 (valid ids, positions, types); masks all ones."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(size=tuple(shape)).astype(dt)
    if dt.kind == "b":
        return np.ones(tuple(shape), dtype=dt)
    if "mask" in name.lower():
        return np.ones(tuple(shape), dtype=dt)
    return rng.integers(0, 2, size=tuple(shape)).astype(dt)
