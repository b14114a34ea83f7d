"""A llama-architecture GGUF with a SentencePiece-style vocabulary, written with gguf.GGUFWriter.

Matrices are Q8_0 (via gguf.quants.quantize), norms F32, as llama.cpp's own converter leaves them.
The weights are seeded random numbers, so generated text is nonsense, but loading, tokenizing,
prefill and decode cost what a real model of this shape costs.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt
from gguf.quants import quantize

from harness.samples._atomic import atomic_target

Q8_0 = gguf.GGMLQuantizationType.Q8_0
# llama_ftype LLAMA_FTYPE_MOSTLY_Q8_0 in llama.h
FILE_TYPE_MOSTLY_Q8_0 = 7
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPACE = "\u2581"  # SentencePiece's visible space
# Common words first so that ordinary text tokenizes into word pieces rather than bytes.
_WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
          "have an they you were her she there been one all we their has would when if so no will more can "
          "model device memory time token run test edge farm student teacher speed")


@dataclass(frozen=True)
class GgufSpec:
    """Hyper-parameters of the generated llama model."""

    vocab: int
    n_embd: int
    n_layers: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx: int
    dup_token: bool = False  # repeat one vocabulary string: llama.cpp aborts on such a file


TINY = GgufSpec(vocab=512, n_embd=64, n_layers=2, n_head=4, n_head_kv=2, n_ff=128, n_ctx=256)
# ~101 M parameters: about 107 MB at Q8_0's 8.5 bits per weight.
DEFAULT = GgufSpec(vocab=8192, n_embd=1024, n_layers=8, n_head=16, n_head_kv=4, n_ff=2560, n_ctx=2048)


def _pieces() -> list[str]:
    """Word pieces in rank order, unique, none equal to a special or byte token."""
    letters = string.ascii_lowercase
    singles = [*letters, *string.ascii_uppercase, *string.digits, *".,;:!?'\"()-/"]
    candidates = itertools.chain(
        [SPACE], (SPACE + w for w in _WORDS.split()), singles, (SPACE + c for c in singles),
        ("".join(p) for p in itertools.product(letters, repeat=2)),
        (SPACE + "".join(p) for p in itertools.product(letters, repeat=2)),
        ("".join(p) for p in itertools.product(letters, repeat=3)),
    )
    return list(dict.fromkeys(candidates))


def vocabulary(spec: GgufSpec) -> tuple[list[str], list[float], list[int]]:
    """Token strings, scores and types: specials, 256 byte tokens, then word pieces by rank."""
    n_pieces = spec.vocab - len(SPECIAL_TOKENS) - 256
    pieces = _pieces()
    if not 0 < n_pieces <= len(pieces):
        raise ValueError(f"vocab {spec.vocab} must lie in ({len(SPECIAL_TOKENS) + 256}, "
                         f"{len(SPECIAL_TOKENS) + 256 + len(pieces)}]")
    pieces = pieces[:n_pieces]
    if spec.dup_token:
        pieces[-1] = pieces[1]
    tokens = [*SPECIAL_TOKENS, *(f"<0x{i:02X}>" for i in range(256)), *pieces]
    T = gguf.TokenType
    types = [int(T.UNKNOWN), int(T.CONTROL), int(T.CONTROL)] + [int(T.BYTE)] * 256 + [int(T.NORMAL)] * n_pieces
    # SentencePiece scores are log-probabilities: a higher score merges first.
    scores = [0.0] * (len(SPECIAL_TOKENS) + 256) + [-float(i) for i in range(n_pieces)]
    return tokens, scores, types


def _tensor_shapes(spec: GgufSpec) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and numpy shapes (rows, cols); ggml's ne is the reverse."""
    d, head_dim = spec.n_embd, spec.n_embd // spec.n_head
    kv = spec.n_head_kv * head_dim
    shapes: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (spec.vocab, d))]
    for i in range(spec.n_layers):
        p = f"blk.{i}"
        shapes += [
            (f"{p}.attn_norm.weight", (d,)),
            (f"{p}.attn_q.weight", (d, d)),
            (f"{p}.attn_k.weight", (kv, d)),
            (f"{p}.attn_v.weight", (kv, d)),
            (f"{p}.attn_output.weight", (d, d)),
            (f"{p}.ffn_norm.weight", (d,)),
            (f"{p}.ffn_gate.weight", (spec.n_ff, d)),
            (f"{p}.ffn_up.weight", (spec.n_ff, d)),
            (f"{p}.ffn_down.weight", (d, spec.n_ff)),
        ]
    return shapes + [("output_norm.weight", (d,)), ("output.weight", (spec.vocab, d))]


def _check(spec: GgufSpec) -> None:
    if spec.n_embd % spec.n_head or spec.n_head % spec.n_head_kv:
        raise ValueError(f"heads must divide n_embd and kv heads must divide heads: {spec}")
    for width in (spec.n_embd, spec.n_ff):
        if width % 32:
            raise ValueError(f"Q8_0 rows must be a multiple of 32 wide, got {width}")


@dataclass(frozen=True)
class LlamaHeader:
    """The llama hyper-parameters and SPM vocabulary a GGUF carries (shared with distill's exporter)."""

    context: int
    embedding: int
    blocks: int
    feed_forward: int
    heads: int
    heads_kv: int
    rope_dims: int
    tokens: list[str]
    scores: list[float]
    types: list[int]
    unk: int
    bos: int
    eos: int
    rope_freq_base: float = 10000.0
    rms_eps: float = 1e-5


def write_llama_header(w: gguf.GGUFWriter, h: LlamaHeader) -> None:
    """Hyper-parameters and an SPM (llama) tokenizer, as llama.cpp reads them."""
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(h.context)
    w.add_embedding_length(h.embedding)
    w.add_block_count(h.blocks)
    w.add_feed_forward_length(h.feed_forward)
    w.add_head_count(h.heads)
    w.add_head_count_kv(h.heads_kv)
    w.add_rope_dimension_count(h.rope_dims)
    w.add_rope_freq_base(h.rope_freq_base)
    w.add_layer_norm_rms_eps(h.rms_eps)
    w.add_vocab_size(len(h.tokens))
    w.add_tokenizer_model("llama")
    w.add_token_list(h.tokens)
    w.add_token_scores(h.scores)
    w.add_token_types(h.types)
    w.add_unk_token_id(h.unk)
    w.add_bos_token_id(h.bos)
    w.add_eos_token_id(h.eos)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)


def write_gguf(path: Path, spec: GgufSpec = DEFAULT, seed: int = 0) -> Path:
    """Write the model to `path` atomically; same spec and seed give the same bytes."""
    _check(spec)
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary(spec)
    with atomic_target(path) as tmp:
        w = gguf.GGUFWriter(tmp, "llama")
        w.add_name("edgefarm-student-llama" + ("-dupvocab" if spec.dup_token else ""))
        w.add_description(f"seeded random llama model {spec} seed={seed}")
        w.add_file_type(FILE_TYPE_MOSTLY_Q8_0)
        write_llama_header(w, LlamaHeader(
            context=spec.n_ctx, embedding=spec.n_embd, blocks=spec.n_layers, feed_forward=spec.n_ff,
            heads=spec.n_head, heads_kv=spec.n_head_kv, rope_dims=spec.n_embd // spec.n_head,
            tokens=tokens, scores=scores, types=types, unk=UNK_ID, bos=BOS_ID, eos=EOS_ID))
        for name, shape in _tensor_shapes(spec):
            if len(shape) == 1:
                w.add_tensor(name, np.ones(shape, dtype=np.float32))
                continue
            value: npt.NDArray[np.float32] = rng.standard_normal(shape, dtype=np.float32)
            value *= np.float32(0.02)
            q = quantize(value, Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=Q8_0)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return path


def write_broken_gguf(path: Path, seed: int = 0) -> Path:
    """Write a tiny model whose vocabulary holds one string twice: llama.cpp aborts (SIGABRT) loading it."""
    return write_gguf(path, replace(TINY, dup_token=True), seed)
