"""Structured pruning of a BertEncoder's attention heads and FFN channels by saliency.

Saliency (Michel et al., 2019): put a gate of 1.0 on every head's output and every FFN channel, run the
distillation loss over some batches, and accumulate |d loss / d gate|. Units with the smallest scores are
removed for real (rows and columns sliced out of the Linear layers), so the pruned model is smaller on disk
and faster, not merely masked. `iterative_prune` alternates pruning steps with distillation fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from distill.models.bert import BertEncoder, Layer


@dataclass
class Saliency:
    heads: list[Tensor]  # per layer, [heads]
    channels: list[Tensor]  # per layer, [intermediate]


def saliency(encoder: BertEncoder, loss_fn: Callable[[Any], Tensor], batches: Sequence[Any]) -> Saliency:
    """Accumulated |d loss / d gate| for every head and FFN channel over `batches`."""
    layers: list[Layer] = list(encoder.layers)  # type: ignore[arg-type]
    for layer in layers:
        layer.attn.head_gate = torch.ones(layer.attn.heads, requires_grad=True)
        layer.ffn_gate = torch.ones(layer.ffn_in.out_features, requires_grad=True)
    heads = [torch.zeros(layer.attn.heads) for layer in layers]
    chans = [torch.zeros(layer.ffn_in.out_features) for layer in layers]
    try:
        for batch in batches:
            loss = loss_fn(batch)
            gates: list[Tensor] = []
            for layer in layers:
                assert layer.attn.head_gate is not None and layer.ffn_gate is not None
                gates += [layer.attn.head_gate, layer.ffn_gate]
            grads = torch.autograd.grad(loss, gates)
            for i in range(len(layers)):
                heads[i] += grads[2 * i].abs()
                chans[i] += grads[2 * i + 1].abs()
    finally:
        for layer in layers:
            layer.attn.head_gate = None
            layer.ffn_gate = None
    return Saliency(heads, chans)


def _keep(scores: Tensor, n: int) -> Tensor:
    return torch.sort(torch.topk(scores, n).indices).values


def _slice_linear(lin: nn.Linear, rows: Tensor | None = None, cols: Tensor | None = None) -> nn.Linear:
    w = lin.weight.detach()
    b = lin.bias.detach() if lin.bias is not None else None
    if rows is not None:
        w = w[rows]
        b = b[rows] if b is not None else None
    if cols is not None:
        w = w[:, cols]
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    new.weight.data.copy_(w)
    if b is not None and new.bias is not None:
        new.bias.data.copy_(b)
    return new


def prune_layer(layer: Layer, keep_heads: Tensor, keep_channels: Tensor) -> None:
    """Remove every head not in `keep_heads` and every FFN channel not in `keep_channels`, in place."""
    attn = layer.attn
    d = attn.head_dim
    rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep_heads.tolist()])
    attn.query = _slice_linear(attn.query, rows=rows)
    attn.key = _slice_linear(attn.key, rows=rows)
    attn.value = _slice_linear(attn.value, rows=rows)
    attn.out = _slice_linear(attn.out, cols=rows)
    attn.heads = len(keep_heads)
    layer.ffn_in = _slice_linear(layer.ffn_in, rows=keep_channels)
    layer.ffn_out = _slice_linear(layer.ffn_out, cols=keep_channels)


def prune_to(encoder: BertEncoder, sal: Saliency, heads: int, channels: int) -> None:
    """Keep the `heads` most salient heads and `channels` most salient FFN channels of every layer."""
    for i, layer in enumerate(encoder.layers):
        assert isinstance(layer, Layer)
        h = min(heads, layer.attn.heads)
        c = min(channels, layer.ffn_in.out_features)
        prune_layer(layer, _keep(sal.heads[i], h), _keep(sal.channels[i], c))
        encoder.cfg.heads[i] = h
        encoder.cfg.intermediate[i] = c


def iterative_prune(encoder: BertEncoder, loss_fn: Callable[[Any], Tensor], score_batches: Sequence[Any],
                    targets: Sequence[tuple[int, int]], finetune: Callable[[int], None]) -> list[dict[str, int]]:
    """For each (heads, channels) target in order: score, prune, then `finetune(step_index)`.

    `finetune` must rebuild its optimiser: pruning replaces the Linear modules it held.
    """
    done: list[dict[str, int]] = []
    for k, (h, c) in enumerate(targets):
        sal = saliency(encoder, loss_fn, score_batches)
        prune_to(encoder, sal, h, c)
        finetune(k)
        done.append({"heads": h, "channels": c, "parameters": sum(p.numel() for p in encoder.parameters())})
    return done
