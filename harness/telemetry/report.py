"""The drift verdict as JSON (for machines and alerts) and Markdown (for a step summary), and the rollback
action: a user-given argv run without a shell; placeholders are whole values we produced, never parsed."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.records import now_rfc3339
from harness.reports.markdown import esc
from harness.telemetry.contract import rfc3339
from harness.telemetry.detect import SEVERITY, WindowVerdict
from harness.version import harness_version

REPORT_SCHEMA = "edgefarm.drift-report/1"
ICON = {"ok": "✅ ok", "insufficient": "⚠️ insufficient", "drift": "🟠 DRIFT", "rollback": "🔴 ROLLBACK"}


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def to_json(v: WindowVerdict, *, model: str, policy: str, source: str) -> dict[str, Any]:
    findings = sorted(v.findings, key=lambda f: (-SEVERITY[f.verdict], f.device_class, f.metric, f.against))
    out: dict[str, Any] = _clean({"schema": REPORT_SCHEMA, "verdict": v.verdict, "model": model,
                   "window": {"start": rfc3339(v.start), "end": rfc3339(v.end)}, "policy": policy,
                   "source": source, "generated_at": now_rfc3339(), "harness_version": harness_version(),
                   "findings": [f.to_dict() for f in findings], "notes": v.notes})
    return out


def to_markdown(d: dict[str, Any]) -> str:
    lines = [f"## Field drift: {ICON[d['verdict']]}", "",
             f"Model `{esc(d['model'])}`, window {esc(d['window']['start'])} to {esc(d['window']['end'])}, "
             f"policy {esc(d['policy'])}, source {esc(d['source'])}.", "",
             "| verdict | device class | metric | against | evidence | decided by |", "|---|---|---|---|---|---|"]
    for f in d["findings"]:
        lines.append(f"| {ICON[f['verdict']]} | {esc(f['device_class'])} | {esc(f['metric'])} | {esc(f['against'])} "
                     f"| {esc(f['reason'])} | {esc(', '.join(f['policy_keys']))} |")
    if not d["findings"]:
        lines.append("| ⚠️ | - | - | - | no device class had data in this window | - |")
    for n in d["notes"]:
        lines.append(f"\n- {esc(n)}")
    rb = d.get("rollback")
    if rb:
        lines += ["", f"Rollback command {esc(rb['argv'])} exited {esc(rb['exit_code'])}."]
    return "\n".join(lines) + "\n"


def write(d: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        pj, pm = out_dir / "drift.json", out_dir / "drift.md"
        pj.write_text(json.dumps(d, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        pm.write_text(to_markdown(d), encoding="utf-8")
    except OSError as e:
        raise UserError(f"{out_dir}: cannot write the drift report ({e.strerror})") from None
    return pj, pm


def run_rollback(argv: list[str], values: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Run the policy's rollback command; {model}, {report_json}, {report_md} are substituted per element."""
    if not argv:
        return {}
    real = [a.format_map(values) if "{" in a else a for a in argv]
    try:
        proc = subprocess.run(real, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise UserError(f"rollback.command: {real[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        return {"argv": real, "exit_code": None, "error": f"timed out after {timeout_s:g} s"}
    return {"argv": real, "exit_code": proc.returncode, "stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}
