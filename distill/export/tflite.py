"""TFLite export, only where a PyTorch -> TFLite converter is installed.

The converter is Google's litert-torch (formerly ai-edge-torch). It is not a dependency of edgefarm: its
wheel pulls transformers, jax, torchao, kagglehub and the LiteRT converter/quantizer packages on top of
torch, far more than this optional extra should carry, and tensorflow itself is a 270 MB wheel. When it is
installed (`pip install litert-torch`, which accepts torch==2.13.0), `export_tflite` uses it and checks
the result in LiteRT's interpreter; otherwise it raises DistillError saying so.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from distill.errors import DistillError

FP32_ATOL = 1e-4
_CONVERTERS = ("litert_torch", "ai_edge_torch")


def _converter() -> ModuleType | None:
    for name in _CONVERTERS:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def converter_available() -> bool:
    return _converter() is not None


def export_tflite(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> Path:
    """Convert with litert-torch and check the file in LiteRT within FP32_ATOL; DistillError if impossible."""
    conv = _converter()
    if conv is None:
        raise DistillError(
            "TFLite export needs a PyTorch-to-TFLite converter (litert-torch, formerly ai-edge-torch), "
            "which is not installed: it pulls transformers, jax, torchao and the LiteRT converter on top of torch, "
            "so edgefarm[distill] does not depend on it",
            hint="pip install litert-torch (keeps torch==2.13.0), or export ONNX/GGUF instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    edge = conv.convert(model, inputs)
    edge.export(str(path))
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise DistillError(f"{path}: written, but LiteRT (ai-edge-litert) is not installed to check it") from exc
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    for det, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(det["index"], x.numpy())
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    with torch.no_grad():
        ref = model(*inputs).numpy()
    diff = float(np.abs(got - ref).max())
    if diff > FP32_ATOL:
        raise DistillError(f"{path}: LiteRT output differs from torch by {diff:.3g} (tolerance {FP32_ATOL:g})")
    return path
