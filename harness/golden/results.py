"""The result of a golden run: per-item outcomes with their scores and reasons, the pass rate, stability.

`GoldenResult.to_dict()` is the JSON form; `workload_fields()` is what the gate's KPIs read from a record's
workload (`quality` for the Model Efficiency Ratio, `behaviour_stability`); `markdown()` is a short summary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["pass", "fail", "error"]
RESULT_SCHEMA = "edgefarm.golden-result/1"


@dataclass
class Check:
    """One tier-1 (unit correctness) check of one item: shape, dtype, finite, determinism, tolerance."""

    name: str
    outcome: Outcome
    detail: str


@dataclass
class ItemResult:
    id: str
    line: int
    kind: Literal["text", "tensor"]
    tags: list[str]
    outcome: Outcome
    reason: str  # one readable line: why it failed, or the scores that passed
    checks: list[Check] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)  # similarity/chrf/rouge_l, or max_abs_err/max_rel_err
    thresholds: dict[str, float] = field(default_factory=dict)
    output: str | None = None
    deterministic: bool | None = None  # None: not repeated

    @property
    def unit_ok(self) -> bool:
        return all(c.outcome == "pass" for c in self.checks)


@dataclass
class GoldenResult:
    suite: str
    suite_name: str
    suite_sha256: str
    target: dict[str, Any]  # kind, ref, sha256, runtime
    teacher: dict[str, Any] | None
    embedder: str | None
    min_pass_rate: float
    items: list[ItemResult]
    started_at: str
    finished_at: str
    duration_s: float
    schema: str = RESULT_SCHEMA

    def count(self, outcome: Outcome) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)

    @property
    def pass_rate(self) -> float:
        return self.count("pass") / len(self.items) if self.items else 0.0

    @property
    def unit_failures(self) -> list[ItemResult]:
        """Items with a failed tier-1 check: these fail the run whatever the pass rate."""
        return [i for i in self.items if not i.unit_ok]

    @property
    def behaviour_stability(self) -> float | None:
        """Share of repeated items whose two outputs (same seed) were identical; None if none was repeated."""
        rep = [i.deterministic for i in self.items if i.deterministic is not None]
        return sum(rep) / len(rep) if rep else None

    def tag_rates(self) -> dict[str, tuple[int, int]]:
        """tag -> (passed, total)."""
        out: dict[str, tuple[int, int]] = {}
        for it in self.items:
            for t in it.tags:
                p, n = out.get(t, (0, 0))
                out[t] = (p + (it.outcome == "pass"), n + 1)
        return dict(sorted(out.items()))

    @property
    def outcome(self) -> Outcome:
        if self.items and self.count("error") == len(self.items):
            return "error"
        if self.unit_failures or self.pass_rate < self.min_pass_rate:
            return "fail"
        return "pass"

    @property
    def reason(self) -> str:
        rate = f"{self.count('pass')}/{len(self.items)} items pass ({100 * self.pass_rate:.1f}%)"
        need = f"needed {100 * self.min_pass_rate:.1f}%"
        if self.outcome == "error":
            return f"every item errored; first: {self.items[0].reason}"
        if self.unit_failures:
            first = self.unit_failures[0]
            return f"{len(self.unit_failures)} item(s) fail unit correctness (first: {first.id}: {first.reason}); {rate}"
        return f"{rate}, {need}"

    def workload_fields(self) -> dict[str, Any]:
        """Fields for a result record's workload: the gate's KPIs read `quality` and `behaviour_stability`."""
        d: dict[str, Any] = {"quality": self.pass_rate, "golden_suite": self.suite_name or self.suite,
                             "golden_suite_sha256": self.suite_sha256, "golden_pass_rate": self.pass_rate,
                             "golden_outcome": self.outcome}
        if self.behaviour_stability is not None:
            d["behaviour_stability"] = self.behaviour_stability
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(outcome=self.outcome, reason=self.reason, pass_rate=self.pass_rate,
                 passed=self.count("pass"), failed=self.count("fail"), errors=self.count("error"),
                 behaviour_stability=self.behaviour_stability,
                 tags={t: {"passed": p, "total": n} for t, (p, n) in self.tag_rates().items()})
        return d

    def markdown(self, max_failures: int = 20) -> str:
        """A short Markdown summary (for $GITHUB_STEP_SUMMARY or a terminal)."""
        icon = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[self.outcome]
        lines = [f"### Golden suite `{self.suite_name or self.suite}` on `{self.target.get('ref')}`: {icon}", "",
                 f"{self.reason}.", ""]
        stab = self.behaviour_stability
        if stab is not None:
            lines += [f"Behavioural stability (same seed, same output): {100 * stab:.1f}%", ""]
        lines += ["| tag | passed | total |", "| --- | ---: | ---: |"]
        lines += [f"| {t} | {p} | {n} |" for t, (p, n) in self.tag_rates().items()]
        bad = [i for i in self.items if i.outcome != "pass"]
        if bad:
            lines += ["", "| item | outcome | reason |", "| --- | --- | --- |"]
            for i in bad[:max_failures]:
                lines.append(f"| `{i.id}` | {i.outcome} | {i.reason.replace('|', '/')} |")
            if len(bad) > max_failures:
                lines.append(f"| ... | | {len(bad) - max_failures} more |")
        return "\n".join(lines) + "\n"
