"""Run control that knows the policy: before a run, which statistics the gate will judge for this cell, and
how many runs (GGUF: repetitions) each needs to be claimable; for `--adaptive decide`, the budgets the agent
stops on.

Which rules apply comes from harness/gate/scope.py (the gate asks the same place). A p-quantile needs
agents.stats.min_samples_for_percentile(p, confidence) samples for a bounded interval; serially dependent
samples have a smaller effective n (agents.stats.effective_n), so the count is raised by HEADROOM. A mean or
rate needs two. GGUF series: ttft_ms and the rates give one sample per repetition, itl_ms new_tokens - 1.
The run still stops at max_s: a rule that could not be claimed in time says what to raise (harness/gate/hints.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.stats import min_samples_for_percentile
from harness.gate.policy import Policy
from harness.gate.scope import budgets_for, relatives_for
from harness.gate.stats import estimator_for
from harness.metrics import METRICS
from harness.profiles import Profile

HEADROOM = 1.5  # effective n = n (1 - r) / (1 + r): r = 0.2 (common on a busy device) costs a factor 1.5
LLM_SERIES = frozenset({"ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "itl_ms"})


@dataclass
class Sizing:
    """What the policy asks of one cell's run: lower bounds on its counts, the budgets to decide on, and why."""

    min_runs: int = 0  # runs (not GGUF) at least
    gguf_repetitions: int = 0  # GGUF repetitions at least
    gated: list[dict[str, Any]] = field(default_factory=list)  # agents.spec.GatedSpec dicts (budgets only)
    reasons: list[str] = field(default_factory=list)
    confidence: float = 0.95  # the policy's: the record's intervals are computed at it
    policy: str = ""  # the policy file it came from


def samples_needed(kind: str, p: float, confidence: float) -> int:
    """Samples for a claimable interval of the statistic, with HEADROOM for serial dependence."""
    base = min_samples_for_percentile(p, confidence) if kind == "quantile" else 2
    return int(math.ceil(base * HEADROOM))


def per_run(series: str, new_tokens: int) -> int:
    """Samples of a series each run (GGUF request) gives."""
    return max(1, new_tokens - 1) if series == "itl_ms" else 1


def runs_for(series: str, samples: int, new_tokens: int) -> int:
    """Runs (GGUF repetitions) that give `samples` samples of a series."""
    return int(math.ceil(samples / per_run(series, new_tokens)))


def size_run(profile: Profile, names: Sequence[str], fmt: str, policy: Policy, new_tokens: int, *,
             relative: bool = True) -> Sizing:
    """The policy's and the profile's demands on one cell (device `profile`, artifact `names`: file name, label).
    relative=False: no baseline will be compared (the demo), so the relative rules ask nothing of the run."""
    conf = policy.stats.confidence
    out = Sizing(confidence=conf, policy=policy.source)
    gguf = fmt == "gguf"
    rules: list[tuple[str, str, float | None]] = [
        (metric, f"{rid} ({src})", limit)
        for metric, limit, rid, src in budgets_for(profile.name, profile.device_class, names, policy, profile)]
    rules += [(r.metric, f"{r.name or r.metric} (policy relative[{i}])", None)
              for i, r in relatives_for(profile.name, profile.device_class, names, policy) if relative]
    for metric, why, limit in rules:
        est = estimator_for(metric)
        if est is None or (est.series in LLM_SERIES and not gguf):
            continue  # a single figure, or a series this format does not produce (the gate skips it)
        runs = runs_for(est.series, samples_needed(est.kind, est.p, conf), new_tokens)
        if gguf and runs > out.gguf_repetitions:
            out.gguf_repetitions = runs
            out.reasons.append(f"{metric} for {why}: gguf_repetitions >= {runs}")
        elif not gguf and runs > out.min_runs:
            out.min_runs = runs
            out.reasons.append(f"{metric} for {why}: min_runs >= {runs}")
        if limit is not None:
            out.gated.append({"metric": metric, "series": est.series, "kind": est.kind, "p": est.p or 0.5,
                              "limit": limit, "lower_is_better": METRICS[metric].better == "lower",
                              "per_run": per_run(est.series, new_tokens) if gguf else 1})
    return out
