"""The gate: judges result records against a policy, device budgets and a baseline run.

    from harness.gate import evaluate, load_policy
    report = evaluate(records, load_policy(path), baseline=baseline_records, profiles=profiles)
    report.verdict, report.exit_code
"""

from harness.gate.engine import evaluate
from harness.gate.model import Cell, GateReport, Kpi, RuleResult
from harness.gate.policy import DEFAULT_POLICY, Policy, load_policy

__all__ = ["DEFAULT_POLICY", "Cell", "GateReport", "Kpi", "Policy", "RuleResult", "evaluate", "load_policy"]
