"""Quantization-aware distillation: fake-quant Linear and Embedding layers that train through rounding.

The fake quantizers mirror what the exporter's runtime does, so the QAT student is trained on the very
function the int8 artifact computes:
- weights int8, symmetric, per output channel, scale = absmax / 127 (onnxruntime quantize_dynamic with
  per_channel=True, QInt8 weights); int4 per block of inputs as onnxruntime's MatMulNBits writes it
  (symmetric, the block's largest-magnitude value maps to -8), or per channel with scale absmax / 7;
- activations into those Linears uint8, asymmetric, per tensor, with the range taken from the tensor
  itself at run time (onnxruntime's DynamicQuantizeLinear: range always includes 0);
- the embedding table int8 symmetric per tensor (onnxruntime's GatherQuant).
Gradients pass straight through the rounding (STE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class QuantConfig:
    weight_bits: int = 8  # 8 or 4
    act_bits: int | None = 8  # None: weights only
    per_channel: bool = True
    block_size: int | None = None  # int4 only: one scale per `block_size` inputs of a row
    quantize_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.weight_bits not in (4, 8):
            raise ValueError(f"weight_bits must be 4 or 8, got {self.weight_bits}")


def _ste(x: Tensor, q: Tensor) -> Tensor:
    return x + (q - x).detach()


def fake_quant_weight(w: Tensor, bits: int = 8, per_channel: bool = True, block_size: int | None = None) -> Tensor:
    """Symmetric fake quantization of a [out, in] weight: round(w / s) * s, s = absmax / (2^(bits-1) - 1)."""
    qmax = 2 ** (bits - 1) - 1
    if block_size is not None:
        # onnxruntime MatMulNBits (symmetric): per block of inputs, the largest-magnitude value m maps to
        # -2^(bits-1) exactly: scale = m / -2^(bits-1) (may be negative), q in [-2^(bits-1), 2^(bits-1) - 1].
        out, inp = w.shape
        pad = (-inp) % block_size
        wb = F.pad(w, (0, pad)).view(out, -1, block_size)
        m = wb.gather(-1, wb.abs().argmax(dim=-1, keepdim=True))
        s = m / -(qmax + 1)
        s = torch.where(s.abs() < 1e-12, torch.full_like(s, 1e-12), s)
        q = (torch.clamp(torch.round(wb / s), -(qmax + 1), qmax) * s).reshape(out, -1)[:, :inp]
        return _ste(w, q)
    absmax = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().amax()
    s = absmax.clamp_min(1e-12) / qmax
    return _ste(w, torch.clamp(torch.round(w / s), -qmax, qmax) * s)


def fake_quant_activation(x: Tensor, bits: int = 8) -> Tensor:
    """Dynamic asymmetric per-tensor fake quantization (DynamicQuantizeLinear's arithmetic)."""
    qmax = 2**bits - 1
    lo = torch.clamp(x.detach().min(), max=0.0)
    hi = torch.clamp(x.detach().max(), min=0.0)
    s = ((hi - lo) / qmax).clamp_min(1e-12)
    zp = torch.clamp(torch.round(-lo / s), 0, qmax)
    q = (torch.clamp(torch.round(x / s) + zp, 0, qmax) - zp) * s
    return _ste(x, q)


class QuantLinear(nn.Linear):
    """nn.Linear whose input and weight pass through fake quantizers."""

    qcfg: QuantConfig

    @classmethod
    def from_linear(cls, lin: nn.Linear, qcfg: QuantConfig) -> QuantLinear:
        new = cls(lin.in_features, lin.out_features, bias=lin.bias is not None)
        new.weight = lin.weight
        new.bias = lin.bias
        new.qcfg = qcfg
        return new

    def forward(self, x: Tensor) -> Tensor:
        c = self.qcfg
        if c.act_bits is not None:
            x = fake_quant_activation(x, c.act_bits)
        return F.linear(x, fake_quant_weight(self.weight, c.weight_bits, c.per_channel, c.block_size), self.bias)


class QuantEmbedding(nn.Embedding):
    """nn.Embedding whose table is fake-quantized per tensor (int8 symmetric)."""

    @classmethod
    def from_embedding(cls, emb: nn.Embedding) -> QuantEmbedding:
        new = cls(emb.num_embeddings, emb.embedding_dim)
        new.weight = emb.weight
        return new

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, fake_quant_weight(self.weight, 8, per_channel=False))


def prepare_qat(model: nn.Module, qcfg: QuantConfig) -> nn.Module:
    """Swap every nn.Linear (and nn.Embedding if configured) for its fake-quant twin, in place; shares weights."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear) and not isinstance(child, QuantLinear):
            setattr(model, name, QuantLinear.from_linear(child, qcfg))
        elif isinstance(child, nn.Embedding) and qcfg.quantize_embeddings and not isinstance(child, QuantEmbedding):
            setattr(model, name, QuantEmbedding.from_embedding(child))
        else:
            prepare_qat(child, qcfg)
    return model


def strip_qat(model: nn.Module) -> nn.Module:
    """Swap fake-quant layers back to plain ones (same float weights), in place, ready for export."""
    for name, child in list(model.named_children()):
        if isinstance(child, QuantLinear):
            lin = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            lin.weight, lin.bias = child.weight, child.bias
            setattr(model, name, lin)
        elif isinstance(child, QuantEmbedding):
            emb = nn.Embedding(child.num_embeddings, child.embedding_dim)
            emb.weight = child.weight
            setattr(model, name, emb)
        else:
            strip_qat(child)
    return model
