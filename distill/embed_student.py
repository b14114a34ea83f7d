"""Sentence-embedding students of a BERT teacher: construction, batches, the distillation objective.

A student keeps the teacher's tokenizer. Its vocabulary table is factorised: the teacher's word
embeddings projected onto their top `embed_dim` principal components (vocab x embed_dim), then a
projection back to the student's width, initialised so that the product reproduces the PCA
reconstruction of the teacher's table; the PCA mean and the teacher's token-type-0 row are folded into
the position table. Layers are copied from the teacher when widths match (then pruned), else fresh.
When the student is narrower, a final projection maps pooled states into the teacher's 384-d space, so
the student's vectors are drop-in comparable with the teacher's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill import losses
from distill.models.bert import BertConfig, BertEncoder, mean_pool


@dataclass(frozen=True)
class StudentSpec:
    """What to build. `layers` are teacher layer indices to copy (when hidden == teacher's), else a count."""

    layers: tuple[int, ...] = (1, 3, 5)
    hidden: int = 384
    embed_dim: int = 64
    heads: int = 6  # after pruning (or from the start for a fresh narrow student)
    intermediate: int = 768
    max_positions: int = 128

    @property
    def name(self) -> str:
        return f"L{len(self.layers)}-H{self.hidden}-A{self.heads}-F{self.intermediate}-E{self.embed_dim}"


class EmbeddingStudent(nn.Module):
    """(input_ids, attention_mask) -> L2-normalised embedding in the teacher's space (the exported graph)."""

    def __init__(self, encoder: BertEncoder, out_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        h = encoder.cfg.hidden
        self.out_proj: nn.Module = nn.Identity() if h == out_dim else nn.Linear(h, out_dim, bias=False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        states = self.encoder(input_ids, attention_mask).last
        m = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)
        return F.normalize(self.out_proj(pooled), p=2.0, dim=-1)


def build_student(teacher: BertEncoder, spec: StudentSpec, seed: int = 0) -> EmbeddingStudent:
    """A student initialised from the teacher as the module docstring describes (before any pruning)."""
    g = torch.Generator().manual_seed(seed)
    tc = teacher.cfg
    same_width = spec.hidden == tc.hidden
    heads = [tc.heads[i] for i in spec.layers] if same_width else [spec.hidden // tc.head_dim] * len(spec.layers)
    inter = [tc.intermediate[i] for i in spec.layers] if same_width else [spec.intermediate] * len(spec.layers)
    cfg = BertConfig(vocab_size=tc.vocab_size, hidden=spec.hidden, head_dim=tc.head_dim, heads=heads,
                     intermediate=inter, max_positions=spec.max_positions, type_vocab=0,
                     embed_dim=spec.embed_dim, ln_eps=tc.ln_eps)
    torch.manual_seed(seed)
    enc = BertEncoder(cfg)
    with torch.no_grad():
        table = teacher.word.weight.detach().float()
        mu = table.mean(dim=0)
        u, s, vt = torch.linalg.svd(table - mu, full_matrices=False)
        k = spec.embed_dim
        # Map teacher width -> student width: identity, or an orthonormal random projection.
        if same_width:
            down = torch.eye(tc.hidden)
        else:
            q, _ = torch.linalg.qr(torch.randn(tc.hidden, tc.hidden, generator=g))
            down = q[: spec.hidden]
        enc.word.weight.copy_(u[:, :k] * s[:k])
        assert isinstance(enc.word_proj, nn.Linear)
        enc.word_proj.weight.copy_(down @ vt[:k].T)
        pos = teacher.position.weight[: spec.max_positions] + mu
        if teacher.token_type is not None:
            pos = pos + teacher.token_type.weight[0]
        enc.position.weight.copy_(pos @ down.T)
        if same_width:
            enc.emb_norm.load_state_dict(teacher.emb_norm.state_dict())
            for dst, src in zip(enc.layers, spec.layers):
                dst.load_state_dict(copy.deepcopy(teacher.layers[src].state_dict()))
    return EmbeddingStudent(enc, tc.hidden)


@dataclass
class EmbedBatch:
    ids: Tensor
    mask: Tensor
    target: Tensor  # teacher embeddings [B, teacher hidden], L2-normalised


def tokenize(tok: object, texts: Sequence[str], max_len: int) -> list[tuple[list[int], list[int]]]:
    """(ids, mask) per text with the teacher's tokenizer, truncated to max_len, unpadded."""
    from tokenizers import Tokenizer

    assert isinstance(tok, Tokenizer)
    tok.no_padding()
    tok.enable_truncation(max_len)
    return [(e.ids, e.attention_mask) for e in tok.encode_batch(list(texts))]


def pad(rows: Sequence[tuple[list[int], list[int]]]) -> tuple[Tensor, Tensor]:
    n = max(len(r[0]) for r in rows)
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, (a, m) in enumerate(rows):
        ids[i, : len(a)] = torch.tensor(a)
        mask[i, : len(m)] = torch.tensor(m)
    return ids, mask


def length_batches(rows: Sequence[tuple[list[int], list[int]]], batch_size: int,
                   group: int = 8) -> list[list[int]]:
    """Index batches: runs of `group` consecutive texts (neighbours in a document, so each batch holds
    related pairs for the similarity-matrix loss), runs sorted by length so padding stays small."""
    runs = [list(range(i, min(i + group, len(rows)))) for i in range(0, len(rows), group)]
    runs.sort(key=lambda r: max(len(rows[j][0]) for j in r))
    per = max(1, batch_size // group)
    return [sum(runs[i:i + per], []) for i in range(0, len(runs), per)]


@torch.no_grad()
def embed(model: nn.Module, rows: Sequence[tuple[list[int], list[int]]], batch_size: int = 64) -> np.ndarray:
    """Embeddings of tokenised texts, in order (sorted by length inside for speed)."""
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    out = np.zeros((len(rows), 0), dtype=np.float32)
    chunks: list[np.ndarray] = []
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        ids, mask = pad([rows[j] for j in idx])
        chunks.append(model(ids, mask).float().numpy())
    if chunks:
        out = np.zeros((len(rows), chunks[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(chunks)
    return out


class TeacherSentence(nn.Module):
    """The teacher as (ids, mask) -> normalised embedding."""

    def __init__(self, encoder: BertEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return mean_pool(self.encoder(input_ids, attention_mask).last, attention_mask)


def embedding_objective(student: nn.Module,
                        weights: losses.EmbeddingLossWeights) -> Callable[..., dict[str, Tensor]]:
    """loss_fn(batch, step=0) for the Trainer: cosine + MSE to the teacher's vectors + similarity matrix."""

    def loss_fn(batch: EmbedBatch, step: int = 0) -> dict[str, Tensor]:
        s = student(batch.ids, batch.mask)
        terms = {"cosine": losses.cosine_embedding_loss(s, batch.target),
                 "mse": losses.mse_embedding_loss(s, batch.target) * s.shape[-1],
                 "similarity": losses.similarity_matrix_loss(s, batch.target)}
        total = (weights.cosine * terms["cosine"] + weights.mse * terms["mse"]
                 + weights.similarity * terms["similarity"])
        return {"loss": total, **terms}

    return loss_fn
