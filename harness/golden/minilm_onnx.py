"""The MiniLM/BERT encoder of embedder.py as an ONNX graph built from the same weights, run in onnxruntime.

Same computation as `Embedder._encode_numpy` (exact-erf GELU, additive mask, mean pooling, L2 norm), about
2.5-3x faster on 2 cores; outputs agree with the numpy path to ~1e-7. Building the graph and the session
costs ~5 s once per process, so the embedder uses it only where onnx and onnxruntime are installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


def build_graph(w: Mapping[str, F32], *, layers: int, heads: int, hidden: int, eps: float) -> bytes:
    """Serialized ONNX model: inputs input_ids [B,T] int64, attention_mask [B,T] float32; output embedding [B,H]."""
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []
    nodes: list[Any] = []
    count = 0

    def const(name: str, arr: npt.ArrayLike) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(kind: str, inputs: list[str], **attrs: Any) -> str:
        nonlocal count
        count += 1
        out = f"t{count}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def layer_norm(x: str, p: str) -> str:
        return op("LayerNormalization", [x, const(p + ".w", w[p + ".weight"]), const(p + ".b", w[p + ".bias"])],
                  axis=-1, epsilon=eps)

    def linear(x: str, p: str) -> str:
        return op("Add", [op("MatMul", [x, const(p + ".wt", w[p + ".weight"].T.copy())]), const(p + ".bb", w[p + ".bias"])])

    i64 = np.int64
    d = hidden // heads
    seq_len = op("Gather", [op("Shape", ["input_ids"]), const("c_one_i", np.array(1, i64))], axis=0)
    positions = op("Range", [const("c_zero_i", np.array(0, i64)), seq_len, const("c_step_i", np.array(1, i64))])
    x = op("Add", [op("Gather", [const("word_emb", w["embeddings.word_embeddings.weight"]), "input_ids"]),
                   op("Gather", [const("pos_emb", w["embeddings.position_embeddings.weight"]), positions])])
    x = layer_norm(op("Add", [x, const("type_emb", w["embeddings.token_type_embeddings.weight"][0])]),
                   "embeddings.LayerNorm")
    masked = op("Sub", [const("c_one_f", np.array(1.0, np.float32)), "attention_mask"])
    bias = op("Unsqueeze", [op("Mul", [masked, const("c_min", np.array(np.finfo(np.float32).min, np.float32))]),
                            const("c_ax12", np.array([1, 2], i64))])
    split = const("c_split", np.array([0, 0, heads, d], i64))
    merge = const("c_merge", np.array([0, 0, hidden], i64))
    scale = const("c_scale", np.array(1.0 / np.sqrt(d), np.float32))
    half, one, sqrt2 = (const(n, np.array(v, np.float32)) for n, v in (("c_half", 0.5), ("c_one", 1.0),
                                                                      ("c_sqrt2", np.sqrt(2.0))))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        q, k, v = (op("Transpose", [op("Reshape", [linear(x, p + "attention.self." + n), split])], perm=[0, 2, 1, 3])
                   for n in ("query", "key", "value"))
        scores = op("Add", [op("Mul", [op("MatMul", [q, op("Transpose", [k], perm=[0, 1, 3, 2])]), scale]), bias])
        ctx = op("Reshape", [op("Transpose", [op("MatMul", [op("Softmax", [scores], axis=-1), v])], perm=[0, 2, 1, 3]),
                             merge])
        x = layer_norm(op("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        gelu = op("Mul", [op("Mul", [h, half]), op("Add", [op("Erf", [op("Div", [h, sqrt2])]), one])])
        x = layer_norm(op("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")
    mask3 = op("Unsqueeze", ["attention_mask", const("c_ax2", np.array([2], i64))])
    total = op("ReduceSum", [op("Mul", [x, mask3]), const("c_ax1", np.array([1], i64))], keepdims=0)
    n_tok = op("Max", [op("ReduceSum", ["attention_mask", "c_ax1"], keepdims=1), const("c_eps", np.array(1e-9, np.float32))])
    pooled = op("Div", [total, n_tok])
    norm = op("Max", [op("ReduceL2", [pooled, "c_ax1"], keepdims=1), const("c_eps2", np.array(1e-12, np.float32))])
    nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))
    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["batch", "seq"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


class OrtEncoder:
    """An onnxruntime session over `build_graph`."""

    def __init__(self, w: Mapping[str, F32], *, layers: int, heads: int, hidden: int, eps: float,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(build_graph(w, layers=layers, heads=heads, hidden=hidden, eps=eps),
                                            opts, providers=["CPUExecutionProvider"])

    def __call__(self, tokens: npt.NDArray[np.int64], mask: F32) -> F32:
        out: F32 = self.session.run(None, {"input_ids": tokens, "attention_mask": mask})[0]
        return out
