"""ONNX export (torch's TorchScript exporter, opset 17) and onnxruntime quantization (int8 dynamic, int4).

Tolerances the verifiers use: fp32 1e-4 max abs difference on unit-norm embeddings / 1e-3 on logits;
quantized artifacts are judged by task quality, not by closeness (that is what quantization trades).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill.errors import DistillError

FP32_ATOL = 1e-4


def export_onnx(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: Sequence[str],
                output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]]) -> Path:
    """fp32 ONNX, opset 17, IR version 8 (older device runtimes read it), weights inside the file."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, str(path), input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()}, opset_version=17,
                          dynamo=False, do_constant_folding=True)
    proto = onnx.load(str(path))
    proto.ir_version = min(proto.ir_version, 8)
    onnx.save(proto, str(path))
    return path


def quantize_int8(src: Path, dst: Path, per_channel: bool = True) -> Path:
    """Dynamic int8 quantization: int8 per-channel weights, uint8 per-tensor activations at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint on the root logger every call
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), per_channel=per_channel, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return dst


def quantize_int4(src: Path, dst: Path, block_size: int = 32) -> Path:
    """Weight-only int4 (MatMulNBits, symmetric, blocks of `block_size`); other tensors stay fp32."""
    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as exc:  # older onnxruntime
        raise DistillError(f"int4 ONNX export needs onnxruntime>=1.17 with onnx-ir installed ({exc})") \
            from exc
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    q = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=block_size, is_symmetric=True)
    q.process()
    q.model.save_model_to_file(str(dst), use_external_data_format=False)
    return dst


def session(path: Path) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(sess: object, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    out = sess.run(None, dict(feeds))  # type: ignore[attr-defined]
    return np.asarray(out[0])


def verify(path: Path, model: nn.Module, inputs: tuple[torch.Tensor, ...], names: Sequence[str],
           atol: float = FP32_ATOL) -> float:
    """Max abs difference between onnxruntime and torch on `inputs`; raises DistillError above `atol`."""
    with torch.no_grad():
        ref = model(*inputs).float().numpy()
    got = run(session(path), {n: t.numpy() for n, t in zip(names, inputs)})
    diff = float(np.abs(got - ref).max())
    if not diff <= atol:
        raise DistillError(f"{path}: onnxruntime output differs from torch by {diff:.3g} (tolerance {atol:g})")
    return diff
