"""Behavioural stability: sampled field outputs against reference outputs for the same prompts (the
teacher's, or the previous stable student's), embedded with the golden suite's all-MiniLM-L6-v2 embedder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harness.errors import UserError
from harness.telemetry import contract as c
from harness.telemetry.evaluate import ScoredSample
from harness.telemetry.store import read_jsonl

# texts, references -> cosine similarities (one per pair)
Similarity = Callable[[Sequence[str], Sequence[str]], list[float]]


def minilm_similarity() -> Similarity:
    """Cosine similarity of MiniLM embeddings (the golden suite's embedder, shared per process)."""
    from harness.golden.embedder import default_embedder

    emb = default_embedder()

    def sim(texts: Sequence[str], refs: Sequence[str]) -> list[float]:
        if not texts:
            return []
        a, b = emb.embed(texts), emb.embed(refs)
        return [float(x) for x in np.einsum("ij,ij->i", a, b)]

    return sim


def load_reference(path: Path) -> dict[str, str]:
    """prompt_id -> reference output, from a contract JSONL of sample records (the first per prompt wins)."""
    if not path.exists():
        raise UserError(f"{path}: behaviour.reference file not found")
    ref: dict[str, str] = {}
    for r in read_jsonl(path):
        if isinstance(r, c.SampleRecord):
            ref.setdefault(r.prompt_id, r.output)
    if not ref:
        raise UserError(f"{path}: no sample records (kind 'sample') to use as references")
    return ref


def score(samples: Sequence[c.SampleRecord], reference: dict[str, str], sim: Similarity) -> list[ScoredSample]:
    """Each sample whose prompt has a reference, with its similarity; others are skipped (no reference)."""
    usable = [s for s in samples if s.prompt_id in reference]
    sims = sim([s.output for s in usable], [reference[s.prompt_id] for s in usable])
    return [ScoredSample(s.time, s.device_class, s.prompt_id, v) for s, v in zip(usable, sims)]
