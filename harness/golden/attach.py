"""Golden results feed the gate: a run directory's golden/<artifact>.json is folded into that artifact's
records (workload["quality"], ["behaviour_stability"], ...), where the gate's KPIs read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.records import Record

GOLDEN_DIR = "golden"


def golden_path(run_dir: Path, artifact_name: str) -> Path:
    return run_dir / GOLDEN_DIR / f"{artifact_name}.json"


def _fields(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"quality": d["pass_rate"], "golden_suite": d.get("suite_name") or d.get("suite"),
                           "golden_suite_sha256": d.get("suite_sha256"), "golden_pass_rate": d["pass_rate"],
                           "golden_outcome": d.get("outcome")}
    if d.get("behaviour_stability") is not None:
        out["behaviour_stability"] = d["behaviour_stability"]
    return out


def attach_golden(records: list[Record], run_dir: Path) -> int:
    """Add each artifact's golden figures to its records; returns how many records got them."""
    n = 0
    for rec in records:
        path = golden_path(run_dir, rec.artifact.name)
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            fields = _fields(data)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{path}: not a golden result ({e})") from None
        except RecursionError:
            raise UserError(f"{path}: not a golden result (JSON nested too deeply to read)") from None
        rec.workload.update(fields)
        n += 1
    return n
