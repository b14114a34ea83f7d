"""Sample student artifacts in all three formats, generated offline from a seed.

`write_samples` gives one ONNX transformer, one TFLite MLP and one llama GGUF with a tokenizer.
Same size and seed give byte-identical files, so their sha256s are stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness.samples import gguf_model, onnx_model, tflite_model
from harness.samples._atomic import write_bytes_atomic
from harness.samples.gguf_model import write_broken_gguf, write_gguf
from harness.samples.onnx_model import write_onnx
from harness.samples.tflite_model import write_tflite

SampleSize = Literal["tiny", "default"]

ONNX_NAME = "student-transformer.onnx"
TFLITE_NAME = "student-mlp.tflite"
GGUF_NAME = "student-llama-q8_0.gguf"
BROKEN_GGUF_NAME = "student-llama-dupvocab.gguf"

__all__ = [
    "BROKEN_GGUF_NAME", "GGUF_NAME", "ONNX_NAME", "TFLITE_NAME", "SampleSize",
    "write_broken_gguf", "write_gguf", "write_onnx", "write_samples", "write_tflite", "write_truncated",
]


def write_samples(out_dir: Path, size: SampleSize = "default", seed: int = 0) -> list[Path]:
    """Write one artifact per format into `out_dir` (ONNX, TFLite, GGUF) and return their paths.

    "default" makes a ~107 MB GGUF so memory and speed figures mean something; "tiny" keeps every
    file well under 5 MB for tests. Existing files of the same names are replaced atomically.
    """
    if size not in ("tiny", "default"):
        raise ValueError(f"size must be 'tiny' or 'default', got {size!r}")
    tiny = size == "tiny"
    out_dir = Path(out_dir)
    return [
        write_onnx(out_dir / ONNX_NAME, onnx_model.TINY if tiny else onnx_model.DEFAULT, seed),
        write_tflite(out_dir / TFLITE_NAME, tflite_model.TINY if tiny else tflite_model.DEFAULT, seed),
        write_gguf(out_dir / GGUF_NAME, gguf_model.TINY if tiny else gguf_model.DEFAULT, seed),
    ]


def write_truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """Copy the first `keep` fraction of `src` to `dst`: a damaged artifact for error-path tests."""
    if not 0.0 <= keep < 1.0:
        raise ValueError(f"keep must be in [0, 1), got {keep}")
    src = Path(src)
    with open(src, "rb") as f:
        prefix = f.read(int(src.stat().st_size * keep))
    return write_bytes_atomic(Path(dst), prefix)
