"""The drift policy: strict typed TOML (harness.config), schema "edgefarm.drift-policy/1".

Every threshold that can decide a verdict is a key here, and a verdict names the keys that decided it.
See README.md beside this file for the meaning of each key and the default policy (drift_policy.toml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import parse_dataclass, read_toml
from harness.errors import ConfigError

SCHEMA = "edgefarm.drift-policy/1"
DEFAULT_POLICY = Path(__file__).with_name("drift_policy.toml")
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class WindowPolicy:
    length: str = "6h"  # evaluation window
    season: str = "1d"  # baselines are the windows at the same phase of this period (day/night)
    history: int = 7  # how many earlier same-phase windows form the field baseline
    min_history: int = 3  # fewer than this: no field-to-field verdict (says so)
    min_requests: int = 200  # a window with fewer requests is `insufficient`, never `ok`
    spread_floor: float = 0.02  # smallest window-to-window log spread assumed (a lucky quiet week is no proof)
    z: float = 3.0  # how many spreads a window must sit from its baseline to count as moved


@dataclass
class LatencyPolicy:
    percentiles: list[float] = field(default_factory=lambda: [50.0, 95.0])
    drift_ratio: float = 1.10
    rollback_ratio: float | None = 1.30
    lab_drift_ratio: float | None = 1.5


@dataclass
class OomPolicy:
    drift_rate: float = 0.005  # exact binomial lower bound of the window's OOM share above this: drift
    rollback_rate: float | None = 0.01  # ... above this: rollback
    drift_ratio: float = 3.0  # lower bound above this times the baseline's upper bound: drift


@dataclass
class MemoryPolicy:
    percentile: float = 95.0
    drift_ratio: float = 1.15
    rollback_ratio: float | None = 1.5
    lab_drift_ratio: float | None = 1.5


@dataclass
class TokensPolicy:
    drift_ratio: float = 0.90
    rollback_ratio: float | None = 0.70
    lab_drift_ratio: float | None = 0.67


@dataclass
class BehaviourPolicy:
    reference: str | None = None  # JSONL of sample records: the teacher's or previous stable student's outputs
    min_samples: int = 10
    drift_drop: float = 0.05  # upper bound below the baseline windows' mean minus this: drift
    drift_similarity: float | None = 0.85  # upper bound below this: drift
    rollback_similarity: float | None = 0.70  # upper bound below this: rollback


@dataclass
class LabPolicy:
    run: str | None = None  # a run directory (results.jsonl) holding the released student's lab figures
    devices: dict[str, str] = field(default_factory=dict)  # device class -> lab device name


@dataclass
class RollbackPolicy:
    command: list[str] = field(default_factory=list)  # argv, run on rollback; {model} {report_json} {report_md}
    timeout_s: float = 300.0


@dataclass
class DriftPolicy:
    schema: str
    confidence: float = 0.95
    window: WindowPolicy = field(default_factory=WindowPolicy)
    latency: LatencyPolicy = field(default_factory=LatencyPolicy)
    oom: OomPolicy = field(default_factory=OomPolicy)
    memory: MemoryPolicy = field(default_factory=MemoryPolicy)
    tokens_per_s: TokensPolicy = field(default_factory=TokensPolicy)
    behaviour: BehaviourPolicy = field(default_factory=BehaviourPolicy)
    lab: LabPolicy = field(default_factory=LabPolicy)
    rollback: RollbackPolicy = field(default_factory=RollbackPolicy)
    path: str = ""

    @property
    def window_s(self) -> float:
        return duration_s(self.window.length)

    @property
    def season_s(self) -> float:
        return duration_s(self.window.season)


def duration_s(text: str) -> float:
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(text)
    return float(int(m.group(1)) * _UNIT_S[m.group(2)])


def _check(p: DriftPolicy, path: Path) -> None:
    def bad(key: str, problem: str) -> ConfigError:
        return ConfigError(path, key, problem)

    if p.schema != SCHEMA:
        raise bad("schema", f"expected {SCHEMA!r}, got {p.schema!r}")
    if not 0.5 <= p.confidence < 1.0:
        raise bad("confidence", f"expected a number in [0.5, 1), got {p.confidence}")
    for key in ("length", "season"):
        try:
            duration_s(getattr(p.window, key))
        except ValueError:
            raise bad(f"window.{key}", f"expected a duration such as '6h' or '1d', got {getattr(p.window, key)!r}")
    w, s = p.window_s, p.season_s
    if s < w or s % w:
        raise bad("window.season", f"must be a whole multiple of window.length ({p.window.length})")
    if p.window.history < 1 or not 1 <= p.window.min_history <= p.window.history:
        raise bad("window.min_history", "expected 1 <= min_history <= history")
    if p.window.min_requests < 1 or p.window.spread_floor < 0 or p.window.z <= 0:
        raise bad("window", "min_requests >= 1, spread_floor >= 0 and z > 0 are required")
    for pct in p.latency.percentiles + [p.memory.percentile]:
        if not 0 < pct < 100:
            raise bad("latency.percentiles", f"percentiles are in (0, 100), got {pct}")
    for sect, rule in (("latency", p.latency), ("memory", p.memory)):
        if rule.drift_ratio <= 1 or (rule.rollback_ratio is not None and rule.rollback_ratio < rule.drift_ratio):
            raise bad(f"{sect}.drift_ratio", "expected 1 < drift_ratio <= rollback_ratio (higher is worse)")
    t = p.tokens_per_s
    if not 0 < t.drift_ratio < 1 or (t.rollback_ratio is not None and not 0 < t.rollback_ratio <= t.drift_ratio):
        raise bad("tokens_per_s.drift_ratio", "expected 0 < rollback_ratio <= drift_ratio < 1 (lower is worse)")
    o = p.oom
    if not 0 < o.drift_rate < 1 or (o.rollback_rate is not None and not o.drift_rate <= o.rollback_rate < 1):
        raise bad("oom.drift_rate", "expected 0 < drift_rate <= rollback_rate < 1")
    if p.behaviour.min_samples < 2:
        raise bad("behaviour.min_samples", "expected at least 2 (an interval needs two)")
    for i, a in enumerate(p.rollback.command):
        try:
            a.format_map({"model": "", "report_json": "", "report_md": ""})
        except (KeyError, ValueError, IndexError) as e:
            raise bad(f"rollback.command[{i}]", f"unknown placeholder or stray brace ({e}); "
                      "allowed: {model} {report_json} {report_md}")
    if p.rollback.timeout_s <= 0:
        raise bad("rollback.timeout_s", "expected a positive number of seconds")


def load_policy(path: Path | None) -> DriftPolicy:
    """Parse and check a drift policy; relative paths inside it are relative to the policy file."""
    path = path or DEFAULT_POLICY
    data = read_toml(path)
    if "schema" not in data:
        raise ConfigError(path, "schema", f"missing required field (expected {SCHEMA!r})")
    if "path" in data:
        raise ConfigError(path, "path", "unknown key")
    pol = parse_dataclass(path, data, DriftPolicy)
    _check(pol, path)
    pol.path = str(path)
    base = path.resolve().parent
    if pol.behaviour.reference and not Path(pol.behaviour.reference).is_absolute():
        pol.behaviour.reference = str(base / pol.behaviour.reference)
    if pol.lab.run and not Path(pol.lab.run).is_absolute():
        pol.lab.run = str(base / pol.lab.run)
    return pol
