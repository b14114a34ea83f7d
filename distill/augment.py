"""Teacher-augmented data for causal-LM students: the teacher continues prompts, the samples join training.

The student then sees the teacher's own distribution on inputs it generates (sequence-level KD, Kim & Rush
2016), not only the corpus. Prompts are cut to the same token length so generation runs as one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from distill.models.chartok import CharVocab
from distill.models.llama import Llama


@torch.no_grad()
def continue_batch(model: Llama, prompts: torch.Tensor, new_tokens: int, temperature: float, top_k: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Sample `new_tokens` after each row of `prompts` [b, n] (no KV cache: tiny models, short contexts)."""
    model.eval()
    ids = prompts
    for _ in range(new_tokens):
        logits = model(ids[:, -model.cfg.max_seq:]).logits[:, -1] / max(temperature, 1e-6)
        if top_k:
            kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
        ids = torch.cat([ids, nxt], dim=1)
    return ids


def teacher_augment(teacher: Llama, vocab: CharVocab, prompts: Sequence[str], per_prompt: int = 2,
                    prompt_tokens: int = 24, new_tokens: int = 96, temperature: float = 0.8, top_k: int = 20,
                    seed: int = 0, batch_size: int = 32) -> list[list[int]]:
    """Token sequences (prompt + teacher continuation), `per_prompt` samples for every prompt long enough."""
    g = torch.Generator().manual_seed(seed)
    rows = [vocab.encode(p)[:prompt_tokens] for p in prompts]
    rows = [r for r in rows if len(r) == prompt_tokens]
    rows = [r for r in rows for _ in range(per_prompt)]
    out: list[list[int]] = []
    for i in range(0, len(rows), batch_size):
        batch = torch.tensor(rows[i:i + batch_size])
        out.extend(continue_batch(teacher, batch, new_tokens, temperature, top_k, g).tolist())
    return out
