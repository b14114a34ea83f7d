"""evaluate(): records + policy (+ baseline run, + device profiles) -> GateReport.

Exit codes: 0 pass, 1 fail. Each rule outcome is marked blocking or not: fail always blocks; error (device
lost, crash, timeout) blocks when the policy's `errors = "fail"` (default); inconclusive blocks when
`inconclusive = "fail"` (default: a budget straddled by its interval, a tainted run, too few samples);
a relative change past its threshold but not significant blocks when `not_significant = "fail"` (default
"pass", as asv: it is reported, marked "~", and does not fail). A run where no rule was judged at all exits 1
unless `inconclusive = "pass"`. Configuration and usage errors are ConfigError / UserError, exit 2.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from harness.errors import ConfigError, UserError
from harness.gate import kpis
from harness.gate.model import Cell, GateReport, RuleResult, Verdict, worst
from harness.gate.policy import BudgetRule, Policy, RelativeRule, load_policy
from harness.gate.rules import MEMORY_METRICS, SampleCache, judge_budget, judge_oom, judge_relative
from harness.metrics import METRICS
from harness.profiles import Profile
from harness.records import Record, now_rfc3339
from harness.version import harness_version


def _latest(records: Sequence[Record], notes: list[str], what: str) -> dict[tuple[str, str], Record]:
    """One record per (device, artifact); a duplicate is said, and the latest finished one is gated."""
    out: dict[tuple[str, str], Record] = {}
    for r in records:
        prev = out.get(r.key)
        if prev is not None:
            keep = r if r.finished_at >= prev.finished_at else prev
            notes.append(f"{what}: {r.key[0]} x {r.key[1]} has more than one record; "
                         f"judged the one finished at {keep.finished_at} (run {keep.run_id})")
            out[r.key] = keep
        else:
            out[r.key] = r
    return out


def _budgets(rec: Record, policy: Policy, profiles: Mapping[str, Profile]) -> list[tuple[str, float, str, str]]:
    """(metric, limit, rule id, source) of every budget that applies to this record."""
    out: list[tuple[str, float, str, str]] = []
    dev, cls, art = rec.device.name, rec.device.device_class, rec.artifact.name
    for i, b in enumerate(policy.budget):
        if b.matches(dev, cls, art):
            limit = b.max if b.max is not None else b.min
            assert limit is not None
            out.append((b.metric, limit, b.name or _budget_id(b.metric, limit), f"policy budget[{i}]"))
    prof = profiles.get(dev)
    if policy.profile_budgets and prof is not None:
        for metric, limit in prof.budgets.items():
            if not math.isfinite(limit):
                raise ConfigError(prof.source or dev, f"budgets.{metric}", f"expected a finite number, got {limit}")
            out.append((metric, limit, _budget_id(metric, limit), f"profile {dev}"))
    return out


def _budget_id(metric: str, limit: float) -> str:
    d = METRICS[metric]
    return f"{metric} {'<=' if d.better == 'lower' else '>='} {limit:g} {d.unit}".rstrip()


def _taint(r: RuleResult, reasons: list[str], whose: str) -> None:
    if r.outcome in ("pass", "fail"):
        r.reason = f"{whose} run tainted ({', '.join(reasons)}): would {r.outcome}: {r.reason}"
        r.outcome = "inconclusive"
        r.more_samples = None
        r.not_significant = False


def _judge(rec: Record, base: Record | None, have_baseline: bool, policy: Policy,
           profiles: Mapping[str, Profile], cache: SampleCache) -> tuple[list[RuleResult], list[str]]:
    notes: list[str] = []
    rules: list[RuleResult] = []
    budgets = _budgets(rec, policy, profiles)
    cfg = policy.stats
    if policy.profile_budgets and profiles and rec.device.name not in profiles:
        notes.append(f"no device profile named '{rec.device.name}': no profile budgets were applied to it")
    if rec.status == "skipped":
        return [RuleResult("run", "run", "record", "skipped", rec.message or "the run was skipped")], notes
    if rec.status == "oom":
        mem = [b for b in budgets if b[0] in MEMORY_METRICS]
        rules = [judge_oom(rec, m, lim, rid, src) for m, lim, rid, src in mem]
        if not rules:
            rules = [RuleResult("run", "run", "record", "error",
                                f"out of memory and no memory budget applies: {rec.message or 'no message'}",
                                error_kind="oom")]
        notes.append("the run ran out of memory: only memory budgets were judged")
        return rules, notes
    if rec.status != "ok":
        sig = f" (signal {rec.signal})" if rec.signal is not None else ""
        kind = rec.status if rec.status in ("device_lost", "crashed", "timeout") else "error"
        return [RuleResult("run", "run", "record", "error", f"{rec.status}{sig}: {rec.message or 'no message'}",
                           error_kind=kind)], notes
    for metric, limit, rid, src in budgets:
        rules.append(judge_budget(rec, metric, limit, rid, src, cfg, cache))
    if have_baseline:
        seed = [cfg.seed, zlib.crc32(f"{rec.device.name}\0{rec.artifact.name}".encode())]
        rng = np.random.default_rng(seed)
        for i, rr in enumerate(policy.relative):
            if not rr.matches(rec.device.name, rec.device.device_class, rec.artifact.name):
                continue
            rid = rr.name or f"{rr.metric} vs baseline <= +{rr.max_worse_pct:g}%"
            r = judge_relative(rec, base, rr.metric, rr.max_worse_pct, rid, f"policy relative[{i}]",
                               cfg, cache, rng)
            if base is not None and base.tainted and r.kind == "relative":
                _taint(r, base.tainted, "baseline")
            rules.append(r)
    if rec.tainted:
        for r in rules:
            _taint(r, rec.tainted, "this")
    if not rules:
        notes.append("no rule applies to this device and artifact")
    return rules, notes


def _provenance(rec: Record) -> dict[str, object]:
    return {
        "run_id": rec.run_id, "artifact_sha256": rec.artifact.sha256, "artifact_size_bytes": rec.artifact.size_bytes,
        "artifact_format": rec.artifact.format, "device_fingerprint": dict(rec.device.fingerprint),
        "transport": rec.device.transport, "runtime": dict(rec.runtime),
        "harness_version": rec.provenance.get("harness_version"),
        "started_at": rec.started_at, "finished_at": rec.finished_at,
    }


def _blocking(r: RuleResult, policy: Policy) -> bool:
    if r.outcome == "fail":
        return True
    if r.outcome == "error":
        return policy.errors == "fail"
    if r.outcome == "inconclusive":
        return (policy.not_significant if r.not_significant else policy.inconclusive) == "fail"
    return False


def evaluate(
    records: Sequence[Record],
    policy: Policy | None = None,
    baseline: Sequence[Record] | None = None,
    profiles: Mapping[str, Profile] | None = None,
    *,
    run: str = "",
    baseline_run: str | None = None,
    known_devices: Iterable[str] = (),
    known_artifacts: Iterable[str] = (),
) -> GateReport:
    """Judge a run against a policy (default policy when None), a baseline run and the device profiles.

    A rule naming a device or artifact that is in none of the profiles, the run, the baseline or
    known_devices / known_artifacts is a ConfigError. Pass the session's full lists there when gating a
    part of a run (one record at a time, as the pytest plugin does).
    """
    if not records:
        raise UserError(f"no result records to gate{' in ' + run if run else ''}")
    policy = policy or load_policy()
    profiles = profiles or {}
    notes: list[str] = []
    cand = _latest(records, notes, "run")
    base = _latest(baseline, notes, "baseline") if baseline is not None else {}
    policy.check_names(set(profiles) | {k[0] for k in cand} | {k[0] for k in base} | set(known_devices),
                       {k[1] for k in cand} | {k[1] for k in base} | set(known_artifacts))
    if baseline is None and policy.relative:
        notes.append("no baseline run given: relative rules were not judged")
    if policy.profile_budgets and not profiles:
        notes.append("no device profiles given: only the policy's own budgets were applied")
    in_run = {k[1] for k in cand}
    scoped: list[tuple[str, BudgetRule | RelativeRule]] = [
        *((f"budget[{i}]", b) for i, b in enumerate(policy.budget)),
        *((f"relative[{i}]", r) for i, r in enumerate(policy.relative))]
    for where, rl in scoped:
        if rl.artifacts and not in_run.intersection(rl.artifacts):
            notes.append(f"policy {where} ({rl.metric}) is about {', '.join(rl.artifacts)}, "
                         "none of which is in this run")
    cache = SampleCache()
    cells: list[Cell] = []
    for key in sorted(cand):
        rec = cand[key]
        b = base.get(key)
        rules, cnotes = _judge(rec, b, baseline is not None, policy, profiles, cache)
        cells.append(Cell(
            device=rec.device.name, device_class=rec.device.device_class, artifact=rec.artifact.name,
            status=rec.status, outcome=worst([r.outcome for r in rules]), rules=rules,
            kpis=kpis.compute(rec, policy.kpis, cache) if rec.status == "ok" else [],
            tainted=list(rec.tainted), notes=cnotes, message=rec.message, provenance=_provenance(rec),
            record=rec, baseline_record=b, latency=cache.get(rec, "latency_ms"),
            baseline_latency=cache.get(b, "latency_ms") if b is not None else None,
        ))
    counts = {o: 0 for o in ("pass", "fail", "inconclusive", "skipped", "error")}
    blocking = False
    for c in cells:
        for r in c.rules:
            counts[r.outcome] += 1
            r.blocking = _blocking(r, policy)
            blocking = blocking or r.blocking
    verdict: Verdict = worst([c.outcome for c in cells])
    nothing_judged = verdict == "skipped" and policy.inconclusive == "fail"
    if nothing_judged:
        notes.append("no rule was judged on any record: a gate that judged nothing is not a pass")
    exit_code = 1 if blocking or nothing_judged else 0
    return GateReport(
        verdict=verdict, exit_code=exit_code, summary=_summary(verdict, cells, exit_code), cells=cells,
        counts=counts, policy_source=policy.source, inconclusive_means=policy.inconclusive,
        errors_mean=policy.errors, not_significant_means=policy.not_significant, run=run, baseline_run=baseline_run, notes=notes,
        harness_version=harness_version(), generated_at=now_rfc3339(),
    )


def _summary(verdict: Verdict, cells: list[Cell], exit_code: int) -> str:
    by: dict[str, int] = {}
    for c in cells:
        by[c.outcome] = by.get(c.outcome, 0) + 1
    parts = [f"{by[o]} {o}" for o in ("fail", "error", "inconclusive", "pass", "skipped") if by.get(o)]
    return f"{verdict.upper()}: {len(cells)} device x artifact cells: {', '.join(parts)} (exit {exit_code})"
