"""Distillation losses. Each is a plain function (or a small module where it owns parameters).

Conventions: logits are [..., vocab]; hidden states [B, L, D]; attention maps [B, H, L, L]; masks are 1 for
real tokens, 0 for padding. Every loss returns a scalar tensor averaged over real positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = -100


def kl_distill(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 3.0,
               mask: Tensor | None = None) -> Tensor:
    """KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over positions (the T^2 keeps gradients T-independent)."""
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    per_pos = (t.exp() * (t - s)).sum(dim=-1)
    return _masked_mean(per_pos, mask) * temperature**2


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float = 3.0,
            alpha: float = 0.5) -> Tensor:
    """alpha * soft (KL at temperature T, scaled by T^2) + (1 - alpha) * hard-label cross-entropy.

    Positions whose label is IGNORE_INDEX count in neither term.
    """
    mask = labels != IGNORE_INDEX
    soft = kl_distill(student_logits, teacher_logits, temperature, mask)
    hard = F.cross_entropy(student_logits.float().reshape(-1, student_logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX)
    return alpha * soft + (1.0 - alpha) * hard


@dataclass(frozen=True)
class AlphaSchedule:
    """Weight of the distillation term over training: starts at `start`, anneals to `end` (cosine).

    High alpha early lets the student copy the teacher's dark knowledge; later the hard labels take over.
    """

    start: float = 0.9
    end: float = 0.5
    total_steps: int = 1000

    def __call__(self, step: int) -> float:
        frac = min(max(step / max(self.total_steps, 1), 0.0), 1.0)
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * frac))


class HiddenMimicry(nn.Module):
    """MSE between student and teacher hidden states, through a learned projection when widths differ.

    `layer_map` pairs (student layer, teacher layer) indices into the hidden-state lists (0 = embeddings).
    """

    def __init__(self, student_dim: int, teacher_dim: int, layer_map: list[tuple[int, int]]) -> None:
        super().__init__()
        self.layer_map = list(layer_map)
        self.proj: nn.Module = (nn.Identity() if student_dim == teacher_dim
                                else nn.Linear(student_dim, teacher_dim, bias=False))

    def forward(self, student_hidden: list[Tensor], teacher_hidden: list[Tensor],
                mask: Tensor | None = None) -> Tensor:
        total = student_hidden[0].new_zeros(())
        for si, ti in self.layer_map:
            per_pos = (self.proj(student_hidden[si]).float() - teacher_hidden[ti].float()).pow(2).mean(dim=-1)
            total = total + _masked_mean(per_pos, mask)
        return total / max(len(self.layer_map), 1)


def attention_transfer(student_attn: Tensor, teacher_attn: Tensor, mask: Tensor | None = None) -> Tensor:
    """MSE between attention maps [B, H, L, L] (TinyBERT). Head counts may differ: then head-averaged maps."""
    if student_attn.shape[1] != teacher_attn.shape[1]:
        student_attn = student_attn.mean(dim=1, keepdim=True)
        teacher_attn = teacher_attn.mean(dim=1, keepdim=True)
    per_row = (student_attn.float() - teacher_attn.float()).pow(2).sum(dim=-1).mean(dim=1)  # [B, L]
    return _masked_mean(per_row, mask)


def cosine_embedding_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean of 1 - cos(student, teacher) over the batch."""
    return (1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()


def mse_embedding_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared error between embeddings, averaged over batch and dimensions."""
    return F.mse_loss(student.float(), teacher.float())


def similarity_matrix_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """MSE between the in-batch cosine-similarity matrices, off the diagonal (the diagonal is 1 for both)."""
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.float(), dim=-1)
    diff = (s @ s.T - t @ t.T).pow(2)
    n = diff.shape[0]
    if n < 2:
        return diff.new_zeros(())
    off = ~torch.eye(n, dtype=torch.bool, device=diff.device)
    return diff[off].mean()


@dataclass(frozen=True)
class EmbeddingLossWeights:
    """Weights of the embedding-student objective's terms."""

    cosine: float = 1.0
    mse: float = 0.0
    similarity: float = 1.0
    hidden: float = 0.0
    attention: float = 0.0


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)
