"""The JSON report: GateReport.to_dict(), described by harness/schemas/gate.schema.json (schema edgefarm.gate/1)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.gate.model import GateReport

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "gate.schema.json"


def to_json(report: GateReport) -> str:
    """Compact JSON (the C encoder: fast for big farms), no NaN or infinity (unbounded sides are "inf")."""
    return json.dumps(report.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"
