"""The gate policy: a strict TOML file of budgets and relative rules, parsed through harness/config.py.

A rule that names an unknown metric, device, device class or artifact is a ConfigError naming the file
and the key: a mistyped name must never silently disable a gate. Metric and device-class names are checked
when the file is read; device names when the policy meets the profiles and the run (`check_names`).
Artifact names are checked when the file is read if the policy declares its `artifacts` (then a farm shard
that runs only some of them still gates); otherwise against the artifacts of the run and the baseline.

    schema = 1
    inconclusive = "fail"      # interval straddles a budget, tainted run, too few samples: exit 1 (or "pass")
    not_significant = "pass"   # past a relative threshold but not significant (asv's "~"): exit 0 (or "fail")
    errors = "fail"            # crashed / timeout / error: exit 1 (or "pass"); device_lost / missing always block
    missing_baseline = "skip"  # a relative rule with no baseline cell: skipped with the reason (or "error")
    profile_budgets = true     # also judge each device profile's [budgets]
    artifacts = ["student-int8", "student-fp16"]  # optional: the artifact names rules may use

    [stats]                    # confidence of intervals, Mann-Whitney alpha, bootstrap replicates, seed
    confidence = 0.95
    alpha = 0.002

    [kpis]                     # inputs of the KPIs that need configuration
    sla_latency_ms = 100.0
    price_per_hour = 0.05
    quality = { "student-int8" = 0.81 }

    [[budget]]                 # absolute: max for lower-is-better metrics, min for higher-is-better ones
    metric = "latency_ms_p95"  # judged on its confidence bound
    max = 250.0
    device_classes = ["phone"] # scope (all optional, all must match): devices, device_classes, artifacts

    [[budget]]
    metric = "memory_headroom_pct"  # % of the device's RAM left at peak
    min = 40.0

    [[relative]]               # against --baseline: fail when past the threshold AND significant
    metric = "latency_ms_p95"
    max_worse_pct = 5.0
    artifacts = ["student-int8"]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.config import bounded, parse_dataclass, read_toml
from harness.errors import ConfigError
from harness.metrics import METRICS
from harness.profiles import DeviceClass

POLICY_SCHEMA = 1
DEFAULT_POLICY = Path(__file__).with_name("default_policy.toml")
Decision = Literal["fail", "pass"]


@dataclass
class Scope:
    """Which (device, artifact) cells a rule is about; an empty list means all."""

    devices: list[str] = field(default_factory=list)
    device_classes: list[DeviceClass] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    def matches(self, device: str, device_class: str, artifact: str) -> bool:
        return (
            (not self.devices or device in self.devices)
            and (not self.device_classes or device_class in self.device_classes)
            and (not self.artifacts or artifact in self.artifacts)
        )


@dataclass(kw_only=True)
class BudgetRule(Scope):
    """An absolute budget: `max` for a lower-is-better metric, `min` for a higher-is-better one."""

    metric: str
    max: float | None = bounded(None, ge=0)
    min: float | None = bounded(None, ge=0)
    name: str = ""


@dataclass(kw_only=True)
class RelativeRule(Scope):
    """Candidate no more than `max_worse_pct` worse than the baseline run (and significantly so to fail)."""

    metric: str
    max_worse_pct: float = bounded(ge=0, le=10000, why="percent")
    name: str = ""


@dataclass
class StatsConfig:
    confidence: float = bounded(0.95, ge=0.5, le=0.999999)  # of intervals on budgets and on baseline ratios
    alpha: float = bounded(0.002, gt=0, le=0.499999)  # Mann-Whitney significance level (asv's default)
    bootstrap: int = bounded(400, ge=50, le=1_000_000)  # bootstrap replicates of a ratio
    seed: int = bounded(0, ge=0, le=2**63 - 1)  # the bootstrap is seeded: one result set gives one verdict


@dataclass
class KpiConfig:
    sla_latency_ms: float | None = bounded(None, gt=0)  # latency SLA compliance: % of samples under this
    price_per_hour: float | None = bounded(None, gt=0)  # device cost, for cost per 1k requests
    currency: str = "USD"
    quality: dict[str, float] = field(default_factory=dict)  # artifact -> quality score (when not in the record)


@dataclass
class Policy:
    schema: int = POLICY_SCHEMA
    description: str = ""
    inconclusive: Decision = "fail"  # what an inconclusive outcome does to the exit code
    not_significant: Decision = "pass"  # relative change past its threshold but not significant (asv: not a fail)
    errors: Decision = "fail"  # what a crash / timeout / error does to the exit code (never a lost or missing cell)
    missing_baseline: Literal["skip", "error"] = "skip"  # a relative rule whose cell has no baseline record
    profile_budgets: bool = True  # also apply each device profile's [budgets]
    artifacts: list[str] = field(default_factory=list)  # declared artifact names (checked at load time)
    stats: StatsConfig = field(default_factory=StatsConfig)
    kpis: KpiConfig = field(default_factory=KpiConfig)
    budget: list[BudgetRule] = field(default_factory=list)
    relative: list[RelativeRule] = field(default_factory=list)
    source: str = field(default="", init=False)  # the file it was read from (set by the loader)

    def check_names(self, devices: Iterable[str], artifacts: Iterable[str]) -> None:
        """Every device and artifact a rule names must exist (in the profiles or in the runs)."""
        known_dev, known_art = set(devices), set(artifacts) | set(self.artifacts)
        for table, rules in (("budget", self.budget), ("relative", self.relative)):
            for i, r in enumerate(rules):
                for j, d in enumerate(r.devices):
                    if d not in known_dev:
                        raise ConfigError(self.source, f"{table}[{i}].devices[{j}]", f"unknown device '{d}'",
                                          hint=f"known devices: {', '.join(sorted(known_dev)) or 'none'}")
                for j, a in enumerate(r.artifacts):
                    if a not in known_art:
                        raise ConfigError(self.source, f"{table}[{i}].artifacts[{j}]", f"unknown artifact '{a}'",
                                          hint=f"artifacts in this run: {', '.join(sorted(known_art)) or 'none'}")


def _check_metric(path: Path, key: str, metric: str) -> None:
    if metric not in METRICS:
        raise ConfigError(path, key, f"unknown metric '{metric}'", hint=f"known: {', '.join(sorted(METRICS))}")


def _validate(path: Path, p: Policy) -> None:
    if p.schema != POLICY_SCHEMA:
        raise ConfigError(path, "schema", f"policy schema {p.schema} is not supported (this edgefarm: 1)")
    if not 0.5 <= p.stats.confidence < 1.0:
        raise ConfigError(path, "stats.confidence", f"expected a number in [0.5, 1), got {p.stats.confidence}")
    if not 0.0 < p.stats.alpha < 0.5:
        raise ConfigError(path, "stats.alpha", f"expected a number in (0, 0.5), got {p.stats.alpha}")
    if p.stats.bootstrap < 50:
        raise ConfigError(path, "stats.bootstrap", "expected at least 50 replicates")
    for i, b in enumerate(p.budget):
        key = f"budget[{i}]"
        _check_metric(path, f"{key}.metric", b.metric)
        for name in ("max", "min"):
            v = getattr(b, name)
            if v is not None and not math.isfinite(v):
                raise ConfigError(path, f"{key}.{name}", f"expected a finite number, got {v}")
        better = METRICS[b.metric].better
        if (b.max is None) == (b.min is None):
            raise ConfigError(path, key, "give exactly one of 'max' or 'min'")
        if better == "lower" and b.min is not None:
            raise ConfigError(path, f"{key}.min", f"'{b.metric}' is lower-is-better: give 'max'")
        if better == "higher" and b.max is not None:
            raise ConfigError(path, f"{key}.max", f"'{b.metric}' is higher-is-better: give 'min'")
    if p.artifacts:
        declared = set(p.artifacts)
        for table, rules in (("budget", p.budget), ("relative", p.relative)):
            for i, rule in enumerate(rules):
                for j, a in enumerate(rule.artifacts):
                    if a not in declared:
                        raise ConfigError(path, f"{table}[{i}].artifacts[{j}]", f"unknown artifact '{a}'",
                                          hint=f"declared in 'artifacts': {', '.join(sorted(declared))}")
        for a in p.kpis.quality:
            if a not in declared:
                raise ConfigError(path, f"kpis.quality.{a}", f"unknown artifact '{a}'",
                                  hint=f"declared in 'artifacts': {', '.join(sorted(declared))}")
    for i, r in enumerate(p.relative):
        _check_metric(path, f"relative[{i}].metric", r.metric)
        if not math.isfinite(r.max_worse_pct) or r.max_worse_pct < 0:
            raise ConfigError(path, f"relative[{i}].max_worse_pct", "must not be negative")
    for name in ("sla_latency_ms", "price_per_hour"):
        v = getattr(p.kpis, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ConfigError(path, f"kpis.{name}", "must be a positive finite number")
    for art, q in p.kpis.quality.items():
        if not math.isfinite(q):
            raise ConfigError(path, f"kpis.quality.{art}", "must be a finite number")


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file; None means the shipped default policy."""
    path = path or DEFAULT_POLICY
    data = read_toml(path)
    if "metric" in data:
        raise ConfigError(path, "metric", "rules go in [[budget]] or [[relative]] tables")
    policy = parse_dataclass(path, data, Policy)
    _validate(path, policy)
    policy.source = str(path)
    return policy
