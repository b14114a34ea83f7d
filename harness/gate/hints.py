"""Which flag or profile key would decide a rule that more samples would decide, and to what (bounded).

One place for the gate's rule reasons (rules.py), `compare` rows and the HTML report.
"""

from __future__ import annotations

from harness.gate.stats import estimator_for

LLM_SERIES = frozenset({"ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "itl_ms", "tpot_ms"})
MAX_SUGGEST = 100_000  # never suggest more than this many runs (or repetitions, or decoded tokens)


def decide_hint(metric: str | None, n: int | None, more: int) -> str:
    """For a gate rule that more samples would decide: which flag or profile key to raise, and to what."""
    est = estimator_for(metric) if metric else None
    series = est.series if est is not None else (metric or "")
    total = min((n or 0) + more, MAX_SUGGEST)
    capped = f" (capped at {MAX_SUGGEST})" if (n or 0) + more > MAX_SUGGEST else ""
    if series == "itl_ms":  # counted in decoded tokens: repetitions x new tokens
        return f"raise the profile key run.gguf_repetitions (repetitions x new tokens >= {total}{capped})"
    if series in LLM_SERIES:
        return f"set the profile key run.gguf_repetitions = {total}{capped}"
    return f"rerun with `edgefarm run --min-runs {total}`{capped}"
