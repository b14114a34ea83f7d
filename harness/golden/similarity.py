"""Similarity measures for golden outputs: embedding cosine, chrF and ROUGE-L.

chrF and ROUGE-L are implemented here (no sacrebleu / rouge-score dependency) and unit-tested against
hand-computed values. Scores are in [0, 1] (chrF is not scaled to 100 as sacrebleu prints it).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt


def cosine(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cosine of the angle between two vectors; 0.0 where either is all zeros."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"cosine of vectors of different sizes {x.shape} and {y.shape}")
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(hypothesis: str, reference: str, *, n: int = 6, beta: float = 2.0) -> float:
    """chrF (Popović 2015): character n-gram F-beta score, n-gram orders 1..n averaged, whitespace removed.

    As in sacrebleu's sentence chrF (word order 0): per order, precision and recall are computed from
    clipped n-gram matches; orders that either side is too short to have are skipped; the averages of precision and recall
    over the remaining orders give F-beta. Two empty strings score 1.0; one empty string scores 0.0.
    """
    hyp = "".join(hypothesis.split())
    ref = "".join(reference.split())
    if not hyp and not ref:
        return 1.0
    if not hyp or not ref:
        return 0.0
    precisions: list[float] = []
    recalls: list[float] = []
    for k in range(1, n + 1):
        hg, rg = _char_ngrams(hyp, k), _char_ngrams(ref, k)
        h_total, r_total = sum(hg.values()), sum(rg.values())
        if h_total == 0 or r_total == 0:
            continue
        match = sum((hg & rg).values())
        precisions.append(match / h_total)
        recalls.append(match / r_total)
    p = sum(precisions) / len(precisions)
    r = sum(recalls) / len(recalls)
    if p == 0.0 and r == 0.0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens: runs of letters/digits; punctuation is dropped (as rouge-score does)."""
    out: list[str] = []
    cur: list[str] = []
    for ch in text.lower():
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a)*len(b)) time, O(len(b)) space)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(hypothesis: str, reference: str, *, beta: float = 1.0) -> float:
    """ROUGE-L (Lin 2004): LCS-based F-measure over word tokens; beta=1 gives rouge-score's F1.

    Two texts with no tokens score 1.0; one empty side scores 0.0.
    """
    h, r = tokens(hypothesis), tokens(reference)
    if not h and not r:
        return 1.0
    lcs = lcs_length(h, r)
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(h), lcs / len(r)
    b2 = beta * beta
    return (1 + b2) * p * rec / (rec + b2 * p)
