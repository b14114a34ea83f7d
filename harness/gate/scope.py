"""Which rules apply to one cell (device x artifact): the one place the gate and the runner ask.

The gate asks per record; the runner asks before a run, to size it and to tell an `--adaptive decide` agent
its budgets (harness/run_sizing.py). A rule's `artifacts` may name the file name or the run's label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.errors import ConfigError
from harness.gate.policy import BudgetRule, Policy, RelativeRule
from harness.metrics import METRICS
from harness.profiles import Profile

Budget = tuple[str, float, str, str]  # (metric, limit, rule id, source)


def applies(rule: BudgetRule | RelativeRule, device: str, device_class: str, names: Sequence[str]) -> bool:
    """The rule's scope matches this device and one of the artifact's names (file name, label)."""
    return any(rule.matches(device, device_class, n) for n in names)


def budget_id(metric: str, limit: float) -> str:
    d = METRICS[metric]
    return f"{metric} {'<=' if d.better == 'lower' else '>='} {limit:g} {d.unit}".rstrip()


def budgets_for(device: str, device_class: str, names: Sequence[str], policy: Policy,
                profile: Profile | None) -> list[Budget]:
    """(metric, limit, rule id, source) of every budget that applies: the policy's, then the profile's."""
    out: list[Budget] = []
    for i, b in enumerate(policy.budget):
        if applies(b, device, device_class, names):
            limit = b.max if b.max is not None else b.min
            assert limit is not None
            out.append((b.metric, limit, b.name or budget_id(b.metric, limit), f"policy budget[{i}]"))
    if policy.profile_budgets and profile is not None:
        for metric, limit in profile.budgets.items():
            if not math.isfinite(limit):
                raise ConfigError(profile.source or device, f"budgets.{metric}", f"expected a finite number, got {limit}")
            out.append((metric, limit, budget_id(metric, limit), f"profile {device}"))
    return out


def relatives_for(device: str, device_class: str, names: Sequence[str], policy: Policy) -> list[tuple[int, RelativeRule]]:
    """(index, rule) of every relative rule that applies."""
    return [(i, r) for i, r in enumerate(policy.relative) if applies(r, device, device_class, names)]
