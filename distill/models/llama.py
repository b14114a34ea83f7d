"""A llama-architecture decoder in plain torch, laid out exactly as llama.cpp computes it.

RMSNorm, rotary embeddings on adjacent pairs (ggml's "normal" rope mode, so the GGUF exporter copies q/k
weights without the permutation Hugging Face checkpoints need), SwiGLU feed-forward, untied output.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class LlamaConfig:
    vocab_size: int
    dim: int = 192
    layers: int = 4
    heads: int = 4
    ffn: int = 512
    max_seq: int = 256
    rms_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(n: int, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = torch.arange(n, dtype=torch.float32)[:, None] * inv[None, :]  # [n, head_dim/2]
    return ang.cos(), ang.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (x[2i], x[2i+1]) pairs; x is [b, h, n, d]."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.attn_norm = RMSNorm(d, cfg.rms_eps)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.ffn_norm = RMSNorm(d, cfg.rms_eps)
        self.gate = nn.Linear(d, cfg.ffn, bias=False)
        self.up = nn.Linear(d, cfg.ffn, bias=False)
        self.down = nn.Linear(cfg.ffn, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, causal: Tensor) -> tuple[Tensor, Tensor]:
        b, n, d = x.shape
        h, hd = self.cfg.heads, self.cfg.head_dim
        y = self.attn_norm(x)

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, h, hd).transpose(1, 2)

        q = apply_rope(split(self.q(y)), cos, sin)
        k = apply_rope(split(self.k(y)), cos, sin)
        v = split(self.v(y))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + causal
        probs = scores.softmax(dim=-1)
        x = x + self.o((probs @ v).transpose(1, 2).reshape(b, n, d))
        y = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y)), probs


class LlamaOutput:
    def __init__(self, logits: Tensor, hidden: list[Tensor], attentions: list[Tensor]) -> None:
        self.logits, self.hidden, self.attentions = logits, hidden, attentions


class Llama(nn.Module):
    """ids [b, n] -> logits [b, n, vocab] (and every block's input/output states and attention maps)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.rms_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        for p in self.parameters():
            if p.ndim == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids: Tensor) -> LlamaOutput:
        n = ids.shape[1]
        cos, sin = rope_tables(n, self.cfg.head_dim, self.cfg.rope_theta)
        causal = torch.full((n, n), float("-inf")).triu(1)
        x = self.embed(ids)
        hidden, attns = [x], []
        for blk in self.blocks:
            x, probs = blk(x, cos, sin, causal)
            hidden.append(x)
            attns.append(probs)
        return LlamaOutput(self.output(self.norm(x)), hidden, attns)

    @torch.no_grad()
    def generate(self, prompt: list[int], new_tokens: int, temperature: float = 0.8, top_k: int = 20,
                 generator: torch.Generator | None = None) -> list[int]:
        """Sample a continuation (no KV cache: these models are tiny and contexts short)."""
        ids = list(prompt)
        for _ in range(new_tokens):
            ctx = torch.tensor([ids[-self.cfg.max_seq:]])
            logits = self(ctx).logits[0, -1] / max(temperature, 1e-6)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            ids.append(int(torch.multinomial(logits.softmax(-1), 1, generator=generator)))
        return ids[len(prompt):]
