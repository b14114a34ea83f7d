"""The JSON report: GateReport.to_dict(), described by harness/schemas/gate.schema.json (schema edgefarm.gate/1)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.gate.model import GateReport

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "gate.schema.json"


def to_json(report: GateReport) -> str:
    """Indented JSON, no NaN or infinity (unbounded interval sides are the strings "inf" / "-inf")."""
    return json.dumps(report.to_dict(), indent=1, sort_keys=False, allow_nan=False) + "\n"
