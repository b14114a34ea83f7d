"""Runtimes behind one small interface, one module per runtime; only the one a run needs is imported."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from agents.protocol import Json
from agents.spec import WorkloadSpec

RUNTIME_MODULES = {"onnx": ("onnxruntime",), "tflite": ("ai_edge_litert", "tflite_runtime"), "gguf": ("llama_cpp",)}


class ModelMismatch(ValueError):
    """The spec names inputs or dimensions the model does not have: a result with status error."""


class Backend:
    """A loaded model that can run one inference."""

    runtime: Json  # name, version, threads
    input_shapes: Dict[str, List[int]]  # what prepare() fed the model
    samples: Dict[str, List[float]]  # extra series recorded while `recording` (GGUF per-token timings)
    recording: bool

    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self.input_shapes = {}
        self.samples = {}
        self.recording = False

    def load(self) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        """Build inputs (not timed); ModelMismatch when the spec names what the model does not have."""

    def run_once(self) -> None:
        raise NotImplementedError


def check_names(what: str, asked: Any, have: List[str]) -> None:
    """ModelMismatch naming each asked-for name the model lacks and the names it has."""
    missing = sorted(set(asked) - set(have))
    if missing:
        raise ModelMismatch("%s: %s not in this model; it has: %s" % (
            what, ", ".join(repr(m) for m in missing), ", ".join(sorted(have)) or "none"))


def make_backend(spec: WorkloadSpec) -> Backend:
    """The backend for spec.format (importing its runtime: ImportError where it is absent or fails)."""
    if spec.format == "onnx":
        from agents.backends.onnx import OnnxBackend
        return OnnxBackend(spec)
    if spec.format == "tflite":
        from agents.backends.tflite import TfliteBackend
        return TfliteBackend(spec)
    from agents.backends.gguf import GgufBackend
    return GgufBackend(spec)


def import_failure(fmt: str, e: ImportError, rlimit: Optional[float]) -> Tuple[str, str]:
    """(status, message) for a runtime that would not import: absent, or present but failing (memory cap)."""
    import importlib.util

    from agents.result import looks_like_oom
    present = []
    for mod in RUNTIME_MODULES[fmt]:
        try:
            if importlib.util.find_spec(mod) is not None:
                present.append(mod)
        except (ImportError, ValueError):
            pass
    if not present:
        return "error", "no %s runtime on this device: none of %s is installed (%s)" % (
            fmt, ", ".join(RUNTIME_MODULES[fmt]), e)
    msg = "%s is installed but failed to import: %s: %s" % (present[0], type(e).__name__, e)
    if rlimit is not None or looks_like_oom(msg):
        return "oom", msg + (" (under rlimit_as_mib=%g)" % rlimit if rlimit is not None else "")
    return "error", msg
