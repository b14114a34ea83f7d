"""evaluate(): records + policy (+ baseline run, + device profiles, + the run's manifest) -> GateReport.

Cells are keyed by (device, artifact sha256) and labelled so same-named files stay apart (records.cell_labels).
With the run's manifest, every planned cell is accounted for: one without a usable record is a `missing`
error cell (harness/gate/checklist.py).

Exit codes (harness/errors.py): 0 pass; 3 when a cell is device_lost or missing (the verdict is incomplete);
else 1 when anything blocks. Each rule outcome is marked blocking or not: fail always blocks; an error
blocks always when it is a lost device, a missing or unreadable record, a run `error` or a missing baseline
under `missing_baseline = "error"`; a crash, timeout or unbudgeted oom blocks when the policy's
`errors = "fail"` (default). A cell that is not ok can therefore never make the verdict PASS. Inconclusive blocks when
`inconclusive = "fail"` (default: a budget straddled by its interval, a tainted run, too few samples);
a relative change past its threshold but not significant blocks when `not_significant = "fail"` (default
"pass", as asv: it is reported, marked "~", and does not fail). A run where no rule was judged at all exits 1
unless `inconclusive = "pass"`. Configuration and usage errors are ConfigError / UserError, exit 2.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from agents import contention
from harness.errors import EXIT_DEVICE, EXIT_GATE_FAILED, EXIT_OK, UserError
from harness.gate import kpis
from harness.gate.blocks import paired
from harness.gate.checklist import missing_baseline_notes, missing_cells
from harness.gate.model import LOST_STATUSES, Cell, GateReport, RuleResult, Verdict, worst
from harness.gate.policy import BudgetRule, Policy, RelativeRule, load_policy
from harness.gate.rules import MEMORY_METRICS, SampleCache, judge_budget, judge_oom, judge_relative
from harness.gate.runjson import Manifest
from harness.gate.scope import applies, budgets_for
from harness.metrics import METRICS
from harness.profiles import Profile
from harness.records import BadLine, Record, now_rfc3339, record_labels
from harness.version import harness_version

# error kinds that block whatever the policy says: the verdict would otherwise hide a hole in the matrix
_ALWAYS_BLOCKS = ("device_lost", "missing", "malformed", "error", "missing_baseline")


def _latest(records: Sequence[Record], notes: list[str], what: str,
            labels: Mapping[str, str]) -> dict[tuple[str, str], Record]:
    """One record per cell (device, sha256); a duplicate is said, and the latest finished one is gated."""
    out: dict[tuple[str, str], Record] = {}
    for r in records:
        prev = out.get(r.cell)
        if prev is not None:
            keep = r if r.finished_at >= prev.finished_at else prev
            notes.append(f"{what}: {r.device.name} x {labels.get(r.artifact.sha256, r.artifact.name)} has more "
                         f"than one record; judged the one finished at {keep.finished_at} (run {keep.run_id})")
            out[r.cell] = keep
        else:
            out[r.cell] = r
    return out


class _BaselineIndex:
    """Finds a candidate cell's baseline record: by sha256 first (same bytes), then by label, then by file name."""

    def __init__(self, base: Mapping[tuple[str, str], Record]) -> None:
        self.by_cell = base
        labels = record_labels(base.values())
        self.by_label = {(r.device.name, labels[r.artifact.sha256]): r for r in base.values()}
        names: dict[tuple[str, str], list[Record]] = {}
        for r in base.values():
            names.setdefault((r.device.name, r.artifact.name), []).append(r)
        self.by_name = {k: v[0] for k, v in names.items() if len(v) == 1}
        self.matched = 0

    def find(self, rec: Record, label: str) -> tuple[Record | None, str]:
        b = self.by_cell.get(rec.cell)
        how = "the same artifact bytes (sha256)"
        if b is None:
            b = self.by_label.get((rec.device.name, label))
            how = f"label '{label}' (sha256 differs)"
        if b is None:
            b = self.by_name.get((rec.device.name, rec.artifact.name))
            how = f"file name '{rec.artifact.name}' (sha256 differs)"
        if b is None:
            return None, ""
        self.matched += 1
        return b, how


def _pairs(cand: Mapping[tuple[str, str], Record]) -> tuple[dict[tuple[str, str], Record], set[tuple[str, str]]]:
    """Interleaved A/B sessions in this run: candidate cell -> its baseline record, and the baseline cells
    (references: compared against, not judged on their own budgets)."""
    by_session: dict[tuple[str, str, str], Record] = {}
    for r in cand.values():
        if r.pairing is not None:
            by_session[(r.device.name, r.pairing.session, r.pairing.role)] = r
    partners: dict[tuple[str, str], Record] = {}
    refs: set[tuple[str, str]] = set()
    for (dev, sid, role), r in by_session.items():
        other = by_session.get((dev, sid, "baseline"))
        if role == "candidate" and other is not None and r.pairing is not None \
                and r.pairing.partner_sha256 == other.artifact.sha256:
            partners[r.cell] = other
            refs.add(other.cell)
    return partners, refs


def _reference(rec: Record, partner: str) -> RuleResult:
    assert rec.pairing is not None
    return RuleResult("reference", "run", "pairing", "skipped",
                      f"reference of the interleaved A/B session {rec.pairing.session} ({rec.pairing.blocks_each} "
                      f"blocks each, {rec.pairing.order}): {partner}'s relative rules are judged against it; its "
                      "own budgets are not judged")


def _applies(rule: BudgetRule | RelativeRule, rec: Record, label: str) -> bool:
    """A rule's `artifacts` may name the file name or the label (`a/model.onnx`): harness/gate/scope.py."""
    return applies(rule, rec.device.name, rec.device.device_class, (rec.artifact.name, label))


def _budgets(rec: Record, label: str, policy: Policy,
             profiles: Mapping[str, Profile]) -> list[tuple[str, float, str, str]]:
    """(metric, limit, rule id, source) of every budget that applies to this record (harness/gate/scope.py)."""
    return budgets_for(rec.device.name, rec.device.device_class, (rec.artifact.name, label), policy,
                       profiles.get(rec.device.name))


def _only_contended(reasons: list[str]) -> bool:
    return bool(reasons) and all(t.startswith(contention.PREFIX) for t in reasons)


def _taint(r: RuleResult, reasons: list[str], whose: str) -> None:
    """A suspect run's verdict becomes inconclusive; contention (agents/contention.py) only where it could have
    caused it: contention slows, so a candidate's budget met or a regression found against a contended
    baseline stands, and memory figures are not timing figures."""
    if _only_contended(reasons) and r.outcome in ("pass", "fail"):
        harmless = r.metric in MEMORY_METRICS or r.outcome == ("pass" if whose == "this" else "fail")
        if harmless:
            r.reason = f"{r.reason} ({whose} run contended, which cannot have caused this {r.outcome})"
            return
    if r.outcome in ("pass", "fail"):
        r.reason = f"{whose} run tainted ({', '.join(reasons)}): would {r.outcome}: {r.reason}"
        r.outcome = "inconclusive"
        r.more_samples = None
        r.not_significant = False


def _no_baseline(rid: str, source: str, rr: RelativeRule, policy: Policy, baseline_run: str | None) -> RuleResult:
    """A relative rule whose cell has no baseline record: skipped with the reason, or an error by policy."""
    reason = (f"no baseline record for this device and artifact in {baseline_run or 'the baseline run'} "
              "(matched neither by sha256, label nor file name)")
    res = RuleResult(rid, "relative", source, "skipped", reason, metric=rr.metric, unit=METRICS[rr.metric].unit,
                     comparator="<=", threshold=rr.max_worse_pct)
    if policy.missing_baseline == "error":
        res.outcome, res.error_kind = "error", "missing_baseline"
        res.reason += '; the policy says missing_baseline = "error"'
    return res


def _judge(rec: Record, label: str, base: Record | None, have_baseline: bool, policy: Policy,
           profiles: Mapping[str, Profile], cache: SampleCache,
           baseline_run: str | None) -> tuple[list[RuleResult], list[str]]:
    notes: list[str] = []
    rules: list[RuleResult] = []
    budgets = _budgets(rec, label, policy, profiles)
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
    alike: set[int] = set()  # relative rules whose runs were both contended
    for metric, limit, rid, src in budgets:
        rules.append(judge_budget(rec, metric, limit, rid, src, cfg, cache))
    if have_baseline:
        seed = [cfg.seed, zlib.crc32(f"{rec.device.name}\0{rec.artifact.name}".encode())]
        rng = np.random.default_rng(seed)
        for i, rr in enumerate(policy.relative):
            if not _applies(rr, rec, label):
                continue
            rid = rr.name or f"{rr.metric} vs baseline <= +{rr.max_worse_pct:g}%"
            if base is None:
                rules.append(_no_baseline(rid, f"policy relative[{i}]", rr, policy, baseline_run))
                continue
            prof = profiles.get(rec.device.name)
            r = judge_relative(rec, base, rr.metric, rr.max_worse_pct, rid, f"policy relative[{i}]",
                               cfg, cache, rng, prof.run.run_spread_pct if prof is not None else None)
            if _only_contended(base.tainted) and _only_contended(rec.tainted) and r.kind == "relative":
                alike.add(id(r))
                if paired(rec, base):  # interleaved blocks of one session: neighbours slowed both alike
                    r.reason += "; both contended in one interleaved session (compared like for like)"
                elif r.outcome == "fail":  # two separate runs: their contention can differ in degree
                    r.outcome, r.not_significant = "inconclusive", True
                    r.reason = (f"both runs contended, separately: would fail: {r.reason}; contention can differ "
                                "between two runs: compare both in one session with `--baseline-artifact`")
                else:
                    r.reason += "; both runs contended (compared like for like)"
            elif base is not None and base.tainted and r.kind == "relative":
                _taint(r, base.tainted, "baseline")
            rules.append(r)
    if rec.tainted:
        for r in rules:
            if id(r) not in alike:
                _taint(r, rec.tainted, "this")
    if not rules:
        notes.append("no rule applies to this device and artifact")
    return rules, notes


def _provenance(rec: Record) -> dict[str, object]:
    return {
        "run_id": rec.run_id, "artifact_sha256": rec.artifact.sha256, "artifact_size_bytes": rec.artifact.size_bytes,
        "artifact_format": rec.artifact.format, "device_fingerprint": dict(rec.device.fingerprint),
        "transport": rec.device.transport, "runtime": dict(rec.runtime),
        "harness_version": rec.provenance.harness_version or None,
        "started_at": rec.started_at, "finished_at": rec.finished_at,
    }


def _blocking(r: RuleResult, policy: Policy) -> bool:
    if r.outcome == "fail":
        return True
    if r.outcome == "error":
        return r.error_kind in _ALWAYS_BLOCKS or policy.errors == "fail"
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
    manifest: Manifest | None = None,
    bad_lines: Sequence[BadLine] = (),
    checklist: bool = False,
) -> GateReport:
    """Judge a run against a policy (default policy when None), a baseline run and the device profiles.

    With `manifest` (the run's run.json) every planned cell is accounted for; `bad_lines` are the results
    lines that hold no record (records.read_results). A rule naming a device or artifact that is in none of
    the profiles, the run, the baseline or known_devices / known_artifacts is a ConfigError. `checklist`:
    the caller gates a whole run directory, so a missing manifest is said (the gate cannot see holes). Pass the
    session's full lists there when gating a part of a run (one record at a time, as the pytest plugin does).
    """
    if not records and not bad_lines and not (manifest and manifest.planned):
        raise UserError(f"no result records to gate{' in ' + run if run else ''}")
    policy = policy or load_policy()
    profiles = profiles or {}
    notes: list[str] = []
    labels = record_labels(records)
    if manifest is not None:  # the labels the run itself gave its artifacts
        labels.update({p.sha256: p.label for p in manifest.planned if p.sha256 is not None})
    cand = _latest(records, notes, "run", labels)
    base = _latest(baseline, notes, "baseline", record_labels(baseline)) if baseline is not None else {}
    index = _BaselineIndex(base)
    policy.check_names(set(profiles) | {k[0] for k in cand} | {k[0] for k in base} | set(known_devices),
                       {r.artifact.name for r in (*cand.values(), *base.values())} | set(labels.values())
                       | set(known_artifacts))
    partners, refs = _pairs(cand)
    for pcell, pbase in partners.items():  # said once per pair, so every printer shows the pairing
        pcand, pb = cand[pcell], pbase.pairing
        assert pb is not None
        notes.append(f"interleaved A/B on {pcand.device.name}: {labels[pcand.artifact.sha256]} against "
                     f"{labels[pbase.artifact.sha256]} (session {pb.session}, {pb.blocks_each} blocks each, {pb.order} "
                     f"after a shared warmup{', requests alternating within each launch' if pb.unit == 'requests' else ''}"
                     "); relative rules judged on the ratios of adjacent blocks")
    _policy_notes(policy, profiles, baseline is not None or bool(partners), notes)
    in_run = {r.artifact.name for r in cand.values()} | {labels[r.artifact.sha256] for r in cand.values()}
    scoped: list[tuple[str, BudgetRule | RelativeRule]] = [
        *((f"budget[{i}]", b) for i, b in enumerate(policy.budget)),
        *((f"relative[{i}]", r) for i, r in enumerate(policy.relative))]
    for where, rl in scoped:
        if rl.artifacts and not in_run.intersection(rl.artifacts):
            notes.append(f"policy {where} ({rl.metric}) is about {', '.join(rl.artifacts)}, "
                         "none of which is in this run")
    cache = SampleCache()
    cells: list[Cell] = []
    for key in sorted(cand, key=lambda k: (k[0], labels[k[1]], k[1])):
        rec = cand[key]
        label = labels[rec.artifact.sha256]
        b, how = index.find(rec, label) if baseline is not None else (None, "")
        pb_rec = partners.get(rec.cell)
        if pb_rec is not None:  # an interleaved pair: its session's baseline, whatever --baseline says
            b = pb_rec
            how = (f"the interleaved A/B session {pb_rec.pairing.session if pb_rec.pairing else ''} "
                   f"({labels[pb_rec.artifact.sha256]})")
        if rec.cell in refs and rec.status == "ok":
            partner = next((labels[k[1]] for k, v in partners.items() if v is rec), "its candidate")
            rules, cnotes = [_reference(rec, partner)], list[str]()
        else:
            rules, cnotes = _judge(rec, label, b, baseline is not None or rec.cell in partners, policy, profiles,
                                   cache, baseline_run)
        prov = _provenance(rec)
        if b is not None:
            cnotes.append(f"baseline record matched by {how}" if rec.cell not in partners else
                          f"paired with its baseline in {how}: relative rules on block ratios")
            prov["baseline_match"] = "interleaved" if rec.cell in partners else how.split(" ", 1)[0] \
                if how.startswith(("label", "file")) else "sha256"
        if rec.pairing is not None:
            prov["pairing"] = {"session": rec.pairing.session, "role": rec.pairing.role,
                               "partner_sha256": rec.pairing.partner_sha256, "order": rec.pairing.order,
                               "blocks_each": rec.pairing.blocks_each, "unit": rec.pairing.unit}
        if rec.blocks:
            prov["blocks"] = len(rec.blocks)
        cells.append(Cell(
            device=rec.device.name, device_class=rec.device.device_class, artifact=label, sha256=rec.artifact.sha256,
            status=rec.status, outcome=worst([r.outcome for r in rules]), rules=rules,
            kpis=kpis.compute(rec, policy.kpis, cache) if rec.status == "ok" else [],
            tainted=list(rec.tainted), notes=cnotes, message=rec.message, provenance=prov,
            record=rec, baseline_record=b, latency=cache.get(rec, "latency_ms"),
            baseline_latency=cache.get(b, "latency_ms") if b is not None else None,
        ))
    missing_baseline_notes(cells, baseline, index.matched, baseline_run, notes)
    cells.extend(missing_cells(manifest, list(cand.values()), bad_lines, notes, checklist))
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
    lost = any(c.status in LOST_STATUSES for c in cells)
    exit_code = EXIT_DEVICE if lost else EXIT_GATE_FAILED if blocking or nothing_judged else EXIT_OK
    return GateReport(
        verdict=verdict, exit_code=exit_code, summary=_summary(verdict, cells, exit_code), cells=cells,
        counts=counts, policy_source=policy.source, inconclusive_means=policy.inconclusive,
        errors_mean=policy.errors, not_significant_means=policy.not_significant, run=run, baseline_run=baseline_run, notes=notes,
        harness_version=harness_version(), generated_at=now_rfc3339(),
    )


def _policy_notes(policy: Policy, profiles: Mapping[str, Profile], have_baseline: bool, notes: list[str]) -> None:
    """What the policy could not judge, said once per report (the empty policy loudly)."""
    if not policy.budget and not policy.relative:
        what = ("only the device profiles' budgets and the runs' status were judged"
                if policy.profile_budgets and profiles else "only the runs' status was judged")
        notes.append(f"POLICY HAS NO RULES: {policy.source or 'the policy'} has no [[budget]] and no [[relative]] "
                     f"rule; {what}")
    if not have_baseline and policy.relative:
        notes.append("no baseline run given: relative rules were not judged")
    if policy.profile_budgets and not profiles:
        notes.append("no device profiles given: only the policy's own budgets were applied")


def _summary(verdict: Verdict, cells: list[Cell], exit_code: int) -> str:
    by: dict[str, int] = {}
    for c in cells:
        by[c.outcome] = by.get(c.outcome, 0) + 1
    parts = [f"{by[o]} {o}" for o in ("fail", "error", "inconclusive", "pass", "skipped") if by.get(o)]
    if exit_code == 0 and (by.get("inconclusive") or by.get("error")):
        parts.append("none of them blocking under this policy")
    return f"{verdict.upper()}: {len(cells)} device x artifact cells: {', '.join(parts)} (exit {exit_code})"
