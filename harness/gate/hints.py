"""Which flag or profile key would decide a rule that more samples would decide, and to what (bounded).

One place for the gate's rule reasons (rules.py), `compare` rows and the HTML report. With the record at hand
the hint is in the units of the key: GGUF repetitions for per-token series (samples / tokens per request),
and, when the run was cut short by max_s, the --max-s that the asked-for count needs at the rate it ran.
"""

from __future__ import annotations

import math

from harness.gate.stats import estimator_for
from harness.records import Record

LLM_SERIES = frozenset({"ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "itl_ms", "tpot_ms"})
MAX_SUGGEST = 100_000  # never suggest more than this many runs (or repetitions, or decoded tokens)
MAX_SECONDS = 86_400  # nor a --max-s past the command line's own bound


def _repetitions(rec: Record | None) -> int:
    if rec is None:
        return 0
    for series in ("ttft_ms", "decode_tokens_per_s", "latency_ms"):  # one sample per GGUF request
        if rec.samples.get(series):
            return len(rec.samples[series])
    return 0


def _max_s_hint(rec: Record | None, n: int, total: int) -> str:
    """When the run stopped at max_s before its counts: the --max-s the total needs at the rate it ran."""
    st = rec.provenance.stopping if rec is not None else None
    if not isinstance(st, dict) or st.get("stop_reason") != "max_s" or n <= 0:
        return ""
    seconds = st.get("seconds")
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return ""
    need = min(MAX_SECONDS, int(math.ceil(float(seconds) * total / n * 1.1)))
    return f" and --max-s {need} (this run stopped at its max_s after {float(seconds):.0f} s)"


def decide_hint(metric: str | None, n: int | None, more: int, rec: Record | None = None) -> str:
    """For a gate rule that more samples would decide: which flag or profile key to raise, and to what."""
    est = estimator_for(metric) if metric else None
    series = est.series if est is not None else (metric or "")
    total = min((n or 0) + more, MAX_SUGGEST)
    capped = f" (capped at {MAX_SUGGEST})" if (n or 0) + more > MAX_SUGGEST else ""
    reps = _repetitions(rec)
    if series == "itl_ms":  # counted in decoded tokens
        if reps and n:
            per = max(1, n // reps)
            need = min(MAX_SUGGEST, int(math.ceil(total / per)))
            return (f"set the profile key run.gguf_repetitions = {need} ({per} tokens per request){capped}"
                    f"{_max_s_hint(rec, reps, need)}")
        return f"raise the profile key run.gguf_repetitions (repetitions x new tokens >= {total}{capped})"
    if series in LLM_SERIES or (series == "latency_ms" and rec is not None and rec.artifact.format == "gguf"):
        return f"set the profile key run.gguf_repetitions = {total}{capped}{_max_s_hint(rec, n or 0, total)}"
    return f"rerun with `edgefarm run --min-runs {total}`{capped}{_max_s_hint(rec, n or 0, total)}"
