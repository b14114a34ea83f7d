"""A TFLite MLP written by hand with flatbuffers and the `tflite` schema package.

FULLY_CONNECTED layers (RELU fused on all but the last) over a float32 [1, N] input, then SOFTMAX.
No TensorFlow needed: the flatbuffer is laid out directly, following what the converter emits
(buffer 0 an empty sentinel, constant data 16-byte aligned, schema version 3, identifier TFL3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
import numpy.typing as npt
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType

from harness.samples._atomic import write_bytes_atomic

SCHEMA_VERSION = 3
FILE_IDENTIFIER = b"TFL3"
INPUT_NAME = "features"
OUTPUT_NAME = "probs"
SIGNATURE_KEY = "serving_default"
# Opcodes above 127 live only in builtin_code; older readers look at the deprecated int8 field.
_DEPRECATED_CODE_MAX = 127

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TfliteSpec:
    """Layer widths: input features, hidden layers, output classes."""

    n_in: int
    hidden: tuple[int, ...]
    n_out: int


TINY = TfliteSpec(n_in=64, hidden=(128, 64), n_out=10)
DEFAULT = TfliteSpec(n_in=512, hidden=(768, 512), n_out=256)


def mlp_weights(spec: TfliteSpec, seed: int = 0) -> list[tuple[F32, F32]]:
    """The (weight [out, in], bias [out]) pairs the model carries, layer by layer."""
    rng = np.random.default_rng(seed)
    widths = [spec.n_in, *spec.hidden, spec.n_out]
    layers = []
    for d_in, d_out in zip(widths, widths[1:]):
        w = rng.standard_normal((d_out, d_in), dtype=np.float32) * np.float32(np.sqrt(2.0 / d_in))
        b = rng.standard_normal(d_out, dtype=np.float32) * np.float32(0.1)
        layers.append((w, b))
    return layers


def reference_forward(x: F32, spec: TfliteSpec, seed: int = 0) -> F32:
    """What the model computes, in numpy: the oracle the runtime's output is checked against."""
    h = x.astype(np.float32)
    layers = mlp_weights(spec, seed)
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, np.float32(0))
    e = np.exp(h - h.max(axis=-1, keepdims=True))
    out: F32 = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return out


def _int_vector(b: flatbuffers.Builder, values: list[int]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependInt32(v)
    return int(b.EndVector())


def _offset_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return int(b.EndVector())


def _buffer(b: flatbuffers.Builder, data: bytes) -> int:
    data_off = None
    if data:
        # 16-byte alignment lets the runtime use constant data in place (mmap, SIMD loads).
        b.StartVector(1, len(data), 16)
        b.head -= len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        data_off = b.EndVector()
    tflite.BufferStart(b)
    if data_off is not None:
        tflite.BufferAddData(b, data_off)
    return int(tflite.BufferEnd(b))


def _tensor(b: flatbuffers.Builder, name: str, shape: list[int], buffer: int) -> int:
    name_off = b.CreateString(name)
    shape_off = _int_vector(b, shape)
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape_off)
    tflite.TensorAddType(b, TensorType.FLOAT32)
    tflite.TensorAddBuffer(b, buffer)
    tflite.TensorAddName(b, name_off)
    return int(tflite.TensorEnd(b))


def _opcode(b: flatbuffers.Builder, code: int) -> int:
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, _DEPRECATED_CODE_MAX))
    tflite.OperatorCodeAddBuiltinCode(b, code)
    tflite.OperatorCodeAddVersion(b, 1)
    return int(tflite.OperatorCodeEnd(b))


def _operator(b: flatbuffers.Builder, opcode_index: int, inputs: list[int], outputs: list[int],
              options_type: int, options: int) -> int:
    in_off, out_off = _int_vector(b, inputs), _int_vector(b, outputs)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, opcode_index)
    tflite.OperatorAddInputs(b, in_off)
    tflite.OperatorAddOutputs(b, out_off)
    tflite.OperatorAddBuiltinOptionsType(b, options_type)
    tflite.OperatorAddBuiltinOptions(b, options)
    return int(tflite.OperatorEnd(b))


def _tensor_map(b: flatbuffers.Builder, name: str, index: int) -> int:
    name_off = b.CreateString(name)
    tflite.TensorMapStart(b)
    tflite.TensorMapAddName(b, name_off)
    tflite.TensorMapAddTensorIndex(b, index)
    return int(tflite.TensorMapEnd(b))


def _signature(b: flatbuffers.Builder, input_index: int, output_index: int) -> int:
    ins = _offset_vector(b, [_tensor_map(b, INPUT_NAME, input_index)])
    outs = _offset_vector(b, [_tensor_map(b, OUTPUT_NAME, output_index)])
    key = b.CreateString(SIGNATURE_KEY)
    tflite.SignatureDefStart(b)
    tflite.SignatureDefAddInputs(b, ins)
    tflite.SignatureDefAddOutputs(b, outs)
    tflite.SignatureDefAddSignatureKey(b, key)
    tflite.SignatureDefAddSubgraphIndex(b, 0)
    return int(tflite.SignatureDefEnd(b))


def build_tflite(spec: TfliteSpec = DEFAULT, seed: int = 0) -> bytes:
    """Serialize the MLP as a TFLite flatbuffer."""
    layers = mlp_weights(spec, seed)
    b = flatbuffers.Builder(1024 + sum(w.nbytes + bias.nbytes + 64 for w, bias in layers))

    # Buffers: 0 is the empty sentinel every non-constant tensor points at; then weight, bias per layer.
    buffer_data = [b""]
    for w, bias in layers:
        buffer_data += [w.tobytes(), bias.tobytes()]
    buffers = [_buffer(b, data) for data in buffer_data]

    # Tensors: input, then per layer (weight, bias, output), then the softmax output.
    tensors = [_tensor(b, INPUT_NAME, [1, spec.n_in], 0)]
    ops = []
    fc_options = []
    for i, (w, bias) in enumerate(layers):
        last = i == len(layers) - 1
        tensors += [
            _tensor(b, f"dense{i}/kernel", list(w.shape), 1 + 2 * i),
            _tensor(b, f"dense{i}/bias", list(bias.shape), 2 + 2 * i),
            _tensor(b, f"dense{i}/out" if not last else "logits", [1, w.shape[0]], 0),
        ]
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(
            b, ActivationFunctionType.NONE if last else ActivationFunctionType.RELU)
        fc_options.append(tflite.FullyConnectedOptionsEnd(b))
    output_index = len(layers) * 3 + 1
    tensors.append(_tensor(b, OUTPUT_NAME, [1, spec.n_out], 0))
    tflite.SoftmaxOptionsStart(b)
    tflite.SoftmaxOptionsAddBeta(b, 1.0)
    softmax_options = tflite.SoftmaxOptionsEnd(b)

    for i in range(len(layers)):
        x_in = 0 if i == 0 else 3 * i
        ops.append(_operator(b, 0, [x_in, 1 + 3 * i, 2 + 3 * i], [3 + 3 * i],
                             BuiltinOptions.FullyConnectedOptions, fc_options[i]))
    ops.append(_operator(b, 1, [output_index - 1], [output_index],
                         BuiltinOptions.SoftmaxOptions, softmax_options))

    tensors_off = _offset_vector(b, tensors)
    inputs_off = _int_vector(b, [0])
    outputs_off = _int_vector(b, [output_index])
    ops_off = _offset_vector(b, ops)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_off)
    tflite.SubGraphAddInputs(b, inputs_off)
    tflite.SubGraphAddOutputs(b, outputs_off)
    tflite.SubGraphAddOperators(b, ops_off)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    opcodes_off = _offset_vector(b, [_opcode(b, BuiltinOperator.FULLY_CONNECTED),
                                     _opcode(b, BuiltinOperator.SOFTMAX)])
    subgraphs_off = _offset_vector(b, [subgraph])
    buffers_off = _offset_vector(b, buffers)
    signatures_off = _offset_vector(b, [_signature(b, 0, output_index)])
    description = b.CreateString(f"edgefarm.samples seeded random MLP {spec} seed={seed}")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, SCHEMA_VERSION)
    tflite.ModelAddOperatorCodes(b, opcodes_off)
    tflite.ModelAddSubgraphs(b, subgraphs_off)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffers_off)
    tflite.ModelAddSignatureDefs(b, signatures_off)
    b.Finish(tflite.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def write_tflite(path: Path, spec: TfliteSpec = DEFAULT, seed: int = 0) -> Path:
    """Write the MLP to `path` atomically; same spec and seed give the same bytes."""
    return write_bytes_atomic(path, build_tflite(spec, seed))
