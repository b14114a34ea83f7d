"""The verdict model: what the gate decided, per rule, per (device, artifact) cell and overall.

One model feeds every printer (JSON, JUnit, Markdown, HTML). Outcomes are not booleans: pass, fail,
inconclusive (with an estimate of how many more samples would decide), skipped, error (with its kind).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harness.records import Record

GATE_SCHEMA = "edgefarm.gate/1"

Outcome = Literal["pass", "fail", "inconclusive", "skipped", "error"]
OUTCOMES: tuple[Outcome, ...] = ("fail", "error", "inconclusive", "pass", "skipped")  # worst first
ErrorKind = Literal["device_lost", "crashed", "timeout", "error", "oom", "missing", "malformed", "missing_baseline"]
# A cell status beyond a record's: "missing" is a planned cell with no usable record (see engine.py).
LOST_STATUSES = ("device_lost", "missing")
RuleKind = Literal["budget", "relative", "run"]
Verdict = Literal["pass", "fail", "inconclusive", "error", "skipped"]


def worst(outcomes: list[Outcome]) -> Outcome:
    """fail > error > inconclusive > pass > skipped; nothing at all is skipped."""
    for o in OUTCOMES:
        if o in outcomes:
            return o
    return "skipped"


def _num(x: float | None) -> float | str | None:
    """JSON has no infinity: an unbounded interval side is written as the string "inf" / "-inf"."""
    if x is None or math.isfinite(x):
        return x
    if math.isnan(x):
        return None
    return "inf" if x > 0 else "-inf"


@dataclass
class RuleResult:
    """One rule judged on one cell."""

    rule: str  # short id, e.g. "latency_ms_p95 <= 250 ms"
    kind: RuleKind
    source: str  # where the rule came from: "policy budget[0]", "profile local", "policy relative[1]"
    outcome: Outcome
    reason: str  # one sentence a release manager can read
    metric: str | None = None
    unit: str = ""
    comparator: Literal["<=", ">=", ""] = ""
    threshold: float | None = None  # the budget, or the allowed worsening in %
    value: float | None = None  # candidate point estimate
    bound: float | None = None  # the confidence bound the decision used
    ci: tuple[float, float] | None = None
    n: int | None = None
    baseline: float | None = None
    change_pct: float | None = None  # relative: + is worse
    change_ci_pct: tuple[float, float] | None = None
    p_value: float | None = None
    more_samples: int | None = None  # inconclusive: estimated extra samples per run that would decide
    error_kind: ErrorKind | None = None
    not_significant: bool = False  # relative: past the threshold but not significant (asv's "~")
    blocking: bool = False  # this outcome makes the exit code non-zero under the policy

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "kind": self.kind, "source": self.source, "outcome": self.outcome,
            "reason": self.reason, "metric": self.metric, "unit": self.unit, "comparator": self.comparator,
            "threshold": self.threshold, "value": _num(self.value), "bound": _num(self.bound),
            "ci": None if self.ci is None else [_num(self.ci[0]), _num(self.ci[1])],
            "n": self.n, "baseline": _num(self.baseline), "change_pct": _num(self.change_pct),
            "change_ci_pct": None if self.change_ci_pct is None
            else [_num(self.change_ci_pct[0]), _num(self.change_ci_pct[1])],
            "p_value": self.p_value, "more_samples": self.more_samples, "error_kind": self.error_kind,
            "not_significant": self.not_significant, "blocking": self.blocking,
        }


@dataclass
class Kpi:
    name: str
    value: float
    unit: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit, "detail": self.detail}


@dataclass
class Cell:
    """One device x artifact: its rules, KPIs and provenance. Keeps its records for the charts."""

    device: str
    device_class: str
    artifact: str  # the label: the file name, or more of its path where two different files share a name
    status: str  # a record's status, or "missing" (planned, no usable record)
    outcome: Outcome
    rules: list[RuleResult]
    sha256: str = ""  # with device, the cell's identity
    kpis: list[Kpi] = field(default_factory=list)
    tainted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    message: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    record: Record | None = field(default=None, repr=False)
    baseline_record: Record | None = field(default=None, repr=False)
    latency: npt.NDArray[np.float64] | None = field(default=None, repr=False)  # sorted warm latencies
    baseline_latency: npt.NDArray[np.float64] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "device_class": self.device_class, "artifact": self.artifact,
            "sha256": self.sha256, "status": self.status, "outcome": self.outcome, "message": self.message,
            "tainted": list(self.tainted), "notes": list(self.notes),
            "rules": [r.to_dict() for r in self.rules], "kpis": [k.to_dict() for k in self.kpis],
            "provenance": dict(self.provenance),
        }


@dataclass
class GateReport:
    """The whole decision. `exit_code` already applies the policy's inconclusive / errors settings."""

    verdict: Verdict
    exit_code: int
    summary: str
    cells: list[Cell]
    counts: dict[str, int]  # rule outcomes: pass / fail / inconclusive / skipped / error
    policy_source: str
    inconclusive_means: str
    errors_mean: str
    not_significant_means: str
    run: str = ""
    baseline_run: str | None = None
    notes: list[str] = field(default_factory=list)
    harness_version: str = ""
    generated_at: str = ""
    schema: str = GATE_SCHEMA

    @property
    def devices(self) -> list[str]:
        return sorted({c.device for c in self.cells})

    @property
    def artifacts(self) -> list[str]:
        return sorted({c.artifact for c in self.cells})

    def cell(self, device: str, artifact: str) -> Cell | None:
        for c in self.cells:
            if c.device == device and c.artifact == artifact:
                return c
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "verdict": self.verdict, "exit_code": self.exit_code,
            "summary": self.summary, "counts": dict(self.counts),
            "policy": {"source": self.policy_source, "inconclusive": self.inconclusive_means,
                       "errors": self.errors_mean, "not_significant": self.not_significant_means},
            "run": self.run, "baseline_run": self.baseline_run, "notes": list(self.notes),
            "harness_version": self.harness_version, "generated_at": self.generated_at,
            "devices": self.devices, "artifacts": self.artifacts,
            "cells": [c.to_dict() for c in self.cells],
        }
