"""A small decoder-only transformer written with onnx.helper: token ids in, logits out.

Pre-norm blocks (LayerNormalization, causal multi-head attention, MLP) over a learned position
embedding, with the output head tied to the token embedding. Weights are seeded random numbers:
the graph has the shape and cost of a real student, not its skill.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.samples._atomic import write_bytes_atomic

OPSET = 17
# ir_version 8 is what onnxruntime 1.10+ and most device builds accept; newer onnx defaults to 10.
IR_VERSION = 8
INPUT_NAME = "input_ids"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class OnnxSpec:
    """Architecture of the generated transformer."""

    vocab: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_seq: int


TINY = OnnxSpec(vocab=512, d_model=64, n_layers=2, n_heads=2, d_ff=256, max_seq=64)
DEFAULT = OnnxSpec(vocab=4096, d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_seq=256)


class _Graph:
    """Collects nodes and initializers; names are derived from a prefix so they stay unique."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        w = self.rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
        return self.const(name, w)

    def op(self, op_type: str, inputs: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _layer_norm(g: _Graph, x: str, prefix: str, d: int) -> str:
    scale = g.const(f"{prefix}.scale", np.ones(d, dtype=np.float32))
    bias = g.const(f"{prefix}.bias", np.zeros(d, dtype=np.float32))
    return g.op("LayerNormalization", [x, scale, bias], f"{prefix}.out", axis=-1, epsilon=1e-5)


def _linear(g: _Graph, x: str, prefix: str, d_in: int, d_out: int) -> str:
    w = g.weight(f"{prefix}.weight", (d_in, d_out), d_in)
    b = g.const(f"{prefix}.bias", np.zeros(d_out, dtype=np.float32))
    return g.op("Add", [g.op("MatMul", [x, w], f"{prefix}.mm"), b], f"{prefix}.out")


def _attention(g: _Graph, x: str, mask: str, p: str, spec: OnnxSpec) -> str:
    d, h = spec.d_model, spec.n_heads
    split = g.const(f"{p}.split_shape", np.array([0, 0, h, d // h], dtype=np.int64))
    merge = g.const(f"{p}.merge_shape", np.array([0, 0, d], dtype=np.int64))
    heads = {}
    for name in ("q", "k", "v"):
        proj = _linear(g, x, f"{p}.{name}", d, d)
        split_out = g.op("Reshape", [proj, split], f"{p}.{name}.split")
        # q and v go to [B, H, S, Dh]; k goes straight to [B, H, Dh, S] for q @ k^T.
        perm = [0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]
        heads[name] = g.op("Transpose", [split_out], f"{p}.{name}.heads", perm=perm)
    scale = g.const(f"{p}.scale", np.array(1.0 / np.sqrt(d // h), dtype=np.float32))
    scores = g.op("Mul", [g.op("MatMul", [heads["q"], heads["k"]], f"{p}.qk"), scale], f"{p}.scores")
    probs = g.op("Softmax", [g.op("Add", [scores, mask], f"{p}.masked")], f"{p}.probs", axis=-1)
    ctx = g.op("MatMul", [probs, heads["v"]], f"{p}.ctx")
    ctx = g.op("Transpose", [ctx], f"{p}.ctx.t", perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, merge], f"{p}.ctx.merged")
    return _linear(g, ctx, f"{p}.o", d, d)


def _mlp(g: _Graph, x: str, p: str, spec: OnnxSpec) -> str:
    up = _linear(g, x, f"{p}.up", spec.d_model, spec.d_ff)
    # GELU is an ONNX op only from opset 20; x * sigmoid(1.702 x) is its usual approximation.
    k = g.const(f"{p}.gelu_k", np.array(1.702, dtype=np.float32))
    gate = g.op("Sigmoid", [g.op("Mul", [up, k], f"{p}.gelu_in")], f"{p}.gelu_sig")
    act = g.op("Mul", [up, gate], f"{p}.gelu")
    return _linear(g, act, f"{p}.down", spec.d_ff, spec.d_model)


def _causal_mask(g: _Graph) -> str:
    """[S, S] additive mask from the input's own length: 0 on and below the diagonal, -1e9 above."""
    shape = g.op("Shape", [INPUT_NAME], "mask.input_shape")
    seq = g.op("Slice", [shape, g.const("mask.one", np.array([1], dtype=np.int64)),
                         g.const("mask.two", np.array([2], dtype=np.int64))], "mask.seq")
    square = g.op("Concat", [seq, seq], "mask.square", axis=0)
    ones = g.op("ConstantOfShape", [square], "mask.ones",
                value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
    upper = g.op("Trilu", [ones, g.const("mask.k", np.array(1, dtype=np.int64))], "mask.upper", upper=1)
    return g.op("Mul", [upper, g.const("mask.neg", np.array(-1e9, dtype=np.float32))], "mask")


def build_onnx(spec: OnnxSpec = DEFAULT, seed: int = 0) -> onnx.ModelProto:
    """Build the transformer as a checked ModelProto."""
    if spec.d_model % spec.n_heads:
        raise ValueError(f"d_model {spec.d_model} is not divisible by n_heads {spec.n_heads}")
    g = _Graph(np.random.default_rng(seed))
    d = spec.d_model
    emb = g.weight("tok_emb", (spec.vocab, d), d)
    pos = g.weight("pos_emb", (spec.max_seq, d), d)
    x = g.op("Gather", [emb, INPUT_NAME], "embed", axis=0)
    # Positions 0..S-1 of the learned table; past max_seq the Add fails, as a real model's would.
    shape = g.op("Shape", [INPUT_NAME], "pos.input_shape")
    seq = g.op("Slice", [shape, g.const("pos.one", np.array([1], dtype=np.int64)),
                         g.const("pos.two", np.array([2], dtype=np.int64))], "pos.seq")
    pos_rows = g.op("Slice", [pos, g.const("pos.zero", np.array([0], dtype=np.int64)), seq], "pos.rows")
    x = g.op("Add", [x, pos_rows], "embed.pos")
    mask = _causal_mask(g)
    for i in range(spec.n_layers):
        p = f"layer{i}"
        attn = _attention(g, _layer_norm(g, x, f"{p}.ln1", d), mask, f"{p}.attn", spec)
        x = g.op("Add", [x, attn], f"{p}.res1")
        mlp = _mlp(g, _layer_norm(g, x, f"{p}.ln2", d), f"{p}.mlp", spec)
        x = g.op("Add", [x, mlp], f"{p}.res2")
    x = _layer_norm(g, x, "final_ln", d)
    head = g.op("Transpose", [emb], "lm_head", perm=[1, 0])
    g.op("MatMul", [x, head], OUTPUT_NAME)

    graph = helper.make_graph(
        g.nodes, "student_transformer",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", "seq", spec.vocab])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgefarm.samples", producer_version="1", ir_version=IR_VERSION,
        doc_string=f"seeded random decoder-only transformer {spec} seed={seed}",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def write_onnx(path: Path, spec: OnnxSpec = DEFAULT, seed: int = 0) -> Path:
    """Write the transformer to `path` atomically; same spec and seed give the same bytes."""
    return write_bytes_atomic(path, build_onnx(spec, seed).SerializeToString(deterministic=True))
