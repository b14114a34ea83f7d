"""GGUF export of a distill Llama (f16 or q8_0, with its character vocabulary) and a llama.cpp check.

Tensor layout is llama.cpp's: numpy (rows, cols) = torch Linear weight [out, in]; norms stay F32. The
check runs llama-cpp-python in a child process, because llama.cpp aborts the whole process (SIGABRT) on
some malformed files instead of raising.
Tolerances the check uses (max abs difference of logits against torch fp32): f16 0.05, q8_0 0.25. The
argmax agreement is reported, not required: near-tied logits of an untrained model flip under q8_0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from distill.errors import DistillError
from distill.models.chartok import BOS, EOS, UNK, CharVocab
from distill.models.llama import Block, Llama

Kind = Literal["f16", "q8_0"]
TOLERANCE: dict[str, float] = {"f16": 0.05, "q8_0": 0.25}


def export_gguf(model: Llama, vocab: CharVocab, path: Path, kind: Kind = "q8_0", name: str = "distill-student") -> Path:
    """Write `model` as a llama GGUF; matrices in `kind`, norms in F32."""
    import gguf
    from gguf.quants import quantize

    from harness.samples.gguf_model import LlamaHeader, write_llama_header

    cfg = model.cfg
    if kind == "q8_0":
        for width in (cfg.dim, cfg.ffn):
            if width % 32:
                raise DistillError(f"q8_0 needs rows a multiple of 32 wide; {width} is not (dim={cfg.dim}, ffn={cfg.ffn})")
    if vocab.size != cfg.vocab_size:
        raise DistillError(f"vocabulary has {vocab.size} tokens but the model expects {cfg.vocab_size}")
    ftype = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_file_type(int(ftype))
    write_llama_header(w, LlamaHeader(
        context=cfg.max_seq, embedding=cfg.dim, blocks=cfg.layers, feed_forward=cfg.ffn, heads=cfg.heads,
        heads_kv=cfg.heads, rope_dims=cfg.head_dim, tokens=list(vocab.tokens()), scores=list(vocab.scores()),
        types=list(vocab.types()), unk=UNK, bos=BOS, eos=EOS, rope_freq_base=cfg.rope_theta, rms_eps=cfg.rms_eps))
    w.add_add_space_prefix(True)

    def mat(name: str, t: torch.Tensor) -> None:
        a = t.detach().float().numpy()
        if kind == "f16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            q = quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    def vec(name: str, t: torch.Tensor) -> None:
        w.add_tensor(name, t.detach().float().numpy().astype(np.float32))

    mat("token_embd.weight", model.embed.weight)
    for i, blk in enumerate(model.blocks):
        assert isinstance(blk, Block)
        p = f"blk.{i}"
        vec(f"{p}.attn_norm.weight", blk.attn_norm.weight)
        mat(f"{p}.attn_q.weight", blk.q.weight)
        mat(f"{p}.attn_k.weight", blk.k.weight)
        mat(f"{p}.attn_v.weight", blk.v.weight)
        mat(f"{p}.attn_output.weight", blk.o.weight)
        vec(f"{p}.ffn_norm.weight", blk.ffn_norm.weight)
        mat(f"{p}.ffn_gate.weight", blk.gate.weight)
        mat(f"{p}.ffn_up.weight", blk.up.weight)
        mat(f"{p}.ffn_down.weight", blk.down.weight)
    vec("output_norm.weight", model.norm.weight)
    mat("output.weight", model.output.weight)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


_CHILD = r"""
import json, sys, numpy as np
from llama_cpp import Llama
spec = json.loads(sys.argv[1])
llm = Llama(model_path=spec["path"], n_ctx=spec["n_ctx"], logits_all=True, verbose=False, n_threads=2, seed=0)
ids = spec["ids"]
llm.eval(ids)
np.save(spec["out"], np.asarray(llm.scores[: len(ids)], dtype=np.float32))
toks = llm.tokenize(spec["text"].encode("utf-8"), add_bos=True)
print(json.dumps({"tokens": toks}))
"""


def llama_cpp_logits(path: Path, ids: list[int], text: str, n_ctx: int, timeout: float = 120) -> tuple[np.ndarray, list[int]]:
    """(logits [len(ids), vocab] from llama.cpp, llama.cpp's tokenisation of `text`), in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.npy"
        spec = {"path": str(path), "ids": ids, "text": text, "n_ctx": n_ctx, "out": str(out)}
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode < 0:
            raise DistillError(f"{path}: llama.cpp died of signal {-proc.returncode} loading or running it",
                               hint=proc.stderr.strip()[-300:] or None)
        if proc.returncode != 0:
            tail = proc.stderr.strip()[-500:]
            if "No module named 'llama_cpp'" in tail:
                raise DistillError("llama-cpp-python is not installed; GGUF exports cannot be checked",
                                   hint="ci/setup.sh builds and installs it")
            raise DistillError(f"{path}: llama.cpp check exited {proc.returncode}: {tail}")
        tokens = json.loads(proc.stdout.strip().splitlines()[-1])["tokens"]
        return np.load(out), tokens


def verify_gguf(path: Path, model: Llama, vocab: CharVocab, text: str, kind: Kind) -> dict[str, float]:
    """Load `path` in llama.cpp; its tokens must equal ours and its logits match torch within TOLERANCE."""
    ids = vocab.encode(text)[: model.cfg.max_seq]
    got, cpp_tokens = llama_cpp_logits(path, ids, text, model.cfg.max_seq)
    if cpp_tokens[: len(ids)] != ids:
        raise DistillError(f"{path}: llama.cpp tokenises differently from the exporter's vocabulary "
                           f"(first ids {cpp_tokens[:12]} vs {ids[:12]})")
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    diff = float(np.abs(got - ref).max())
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean())
    if not diff <= TOLERANCE[kind]:
        raise DistillError(f"{path}: llama.cpp logits differ from torch by {diff:.3g} (tolerance {TOLERANCE[kind]})")
    return {"max_abs_logit_diff": diff, "argmax_agreement": agree, "tokens_checked": float(len(ids))}
