"""Accelerators: what a run asked for (spec.backend), what the runtime actually ran, and why they differ.

Every record says `runtime.backend` (what ran), `backend_requested`, and `backend_note` when a request fell
back to the CPU (never hidden)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider", "nnapi": "NnapiExecutionProvider",
                 "xnnpack": "XnnpackExecutionProvider"}
# LiteRT / TFLite delegate libraries by backend (load_delegate tries each name in turn)
TFLITE_DELEGATES: Dict[str, Tuple[str, ...]] = {
    "gpu": ("libLiteRtGpuAccelerator.so", "libtensorflowlite_gpu_delegate.so"),
    "nnapi": ("libnnapi_delegate.so", "libtensorflowlite_nnapi_delegate.so"),
}


def record(runtime: Dict[str, Any], requested: Optional[str], ran: str, note: Optional[str] = None) -> None:
    """Write the backend fields into a runtime dict."""
    runtime["backend"] = ran
    runtime["backend_requested"] = requested or "cpu"
    if note:
        runtime["backend_note"] = note


def ort_providers(ort: Any, requested: Optional[str]) -> Tuple[List[str], Optional[str]]:
    """Providers to ask onnxruntime for, and a note when the requested one is not in this build."""
    want = requested or "cpu"
    prov = ORT_PROVIDERS[want]
    if want == "cpu":
        return ["CPUExecutionProvider"], None
    avail = list(ort.get_available_providers())
    if prov not in avail:
        return ["CPUExecutionProvider"], ("requested %s (%s), but this onnxruntime build has only %s: ran on the CPU"
                                          % (want, prov, ", ".join(avail)))
    return [prov, "CPUExecutionProvider"], None


def ort_ran(requested: Optional[str], used: List[str]) -> Tuple[str, Optional[str]]:
    """What onnxruntime registered for the session (get_providers) -> (backend that ran, note)."""
    want = requested or "cpu"
    if want != "cpu" and ORT_PROVIDERS[want] in used:
        return want, "nodes %s cannot run are assigned to the CPU provider (onnxruntime places each node)" % (
            ORT_PROVIDERS[want])
    return "cpu", None


def tflite_delegate(tfl: Any, requested: Optional[str]) -> Tuple[List[Any], str, Optional[str]]:
    """(experimental_delegates, backend that will run, note) for LiteRT's Interpreter."""
    want = requested or "cpu"
    if want in ("cpu", "xnnpack"):  # LiteRT's default CPU path applies its XNNPACK delegate where it can
        return [], want, "LiteRT's default CPU path (its XNNPACK delegate applies to the ops it supports)"
    errors = []
    for lib in TFLITE_DELEGATES.get(want, ()):
        try:
            return [tfl.load_delegate(lib)], want, None
        except (ValueError, OSError, RuntimeError) as e:
            errors.append("%s: %s" % (lib, e))
    return [], "cpu", "requested %s delegate could not be loaded (%s): ran on the CPU" % (want, "; ".join(errors))
