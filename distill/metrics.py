"""Quality measures: Spearman rank correlation, paraphrase checks, perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    # Ties share their mean rank.
    vals, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho (Pearson correlation of the ranks, ties averaged)."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom else 0.0


def pair_cosines(emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays."""
    na = emb_a / np.linalg.norm(emb_a, axis=1, keepdims=True).clip(1e-12)
    nb = emb_b / np.linalg.norm(emb_b, axis=1, keepdims=True).clip(1e-12)
    return np.asarray((na * nb).sum(axis=1))


def paraphrase_accuracy(anchor: np.ndarray, para: np.ndarray, distractor: np.ndarray) -> tuple[float, float]:
    """(fraction of triples where cos(anchor, paraphrase) > cos(anchor, distractor), mean margin)."""
    margin = pair_cosines(anchor, para) - pair_cosines(anchor, distractor)
    return float((margin > 0).mean()), float(margin.mean())


def perplexity(mean_nll: float) -> float:
    return math.exp(mean_nll)
