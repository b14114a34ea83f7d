"""Benchmark and gate exported students on a farm device through edgefarm's own CLI, in a subprocess.

distill depends on the harness only through its command line (`edgefarm run`, `edgefarm gate`), so a
harness that is missing or older than these commands is reported, not crashed on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Embedding students take (batch, sequence) ids: measure one 32-token sentence.
EMBED_SPEC = {"dynamic_dims": {"batch": 1, "sequence": 32}}


def _edgefarm() -> list[str]:
    exe = shutil.which("edgefarm") or str(Path(sys.executable).with_name("edgefarm"))
    return [exe] if Path(exe).is_file() else [sys.executable, "-m", "harness.cli"]


def harness_available() -> str | None:
    """None when `edgefarm run` and `edgefarm gate` exist; else what is missing, in words."""
    for cmd in ("run", "gate"):
        try:
            proc = subprocess.run([*_edgefarm(), cmd, "--help"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"could not start edgefarm: {exc}"
        if proc.returncode != 0:
            return f"`edgefarm {cmd}` is not available (exit {proc.returncode}: {proc.stderr.strip()[-200:]})"
    return None


def bench_and_gate(artifacts: Sequence[Path], out: Path, policy: Path, device: str = "local",
                   spec: dict[str, Any] | None = None, timeout: float = 900) -> dict[str, Any]:
    """`edgefarm run` the artifacts on `device` into out/farm, then `edgefarm gate` with `policy`.

    Returns {"status": "pass"|"fail"|"error"|"unavailable", "message", "gate": verdict JSON or None,
    "commands": [argv...]}. Never raises for a missing harness.
    """
    missing = harness_available()
    if missing:
        return {"status": "unavailable", "message": missing, "gate": None, "commands": []}
    run_dir = out / "farm"
    run_cmd = [*_edgefarm(), "run", "--device", device, "--out", str(run_dir), "--max-s", "10", "-q"]
    for a in artifacts:
        run_cmd += ["--artifact", str(a)]
    if spec:
        run_cmd += ["--spec-json", json.dumps(spec)]
    verdict_path = out / "gate.json"
    gate_cmd = [*_edgefarm(), "gate", str(run_dir), "--policy", str(policy), "--json", str(verdict_path),
                "--md", str(out / "gate.md")]
    commands = [run_cmd, gate_cmd]
    proc = subprocess.run(run_cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 and not (run_dir / "results.jsonl").is_file():
        return {"status": "error", "message": f"edgefarm run exited {proc.returncode}: {proc.stderr.strip()[-400:]}",
                "gate": None, "commands": commands}
    gate = subprocess.run(gate_cmd, capture_output=True, text=True, timeout=300)
    verdict = json.loads(verdict_path.read_text()) if verdict_path.is_file() else None
    status = "pass" if gate.returncode == 0 else ("fail" if gate.returncode == 1 else "error")
    return {"status": status, "message": (gate.stdout + gate.stderr).strip()[-400:], "gate": verdict,
            "commands": commands}


def run_metrics(out: Path) -> dict[str, dict[str, Any]]:
    """artifact file name -> {"status", metric: value...} from the run's results.jsonl (edgefarm's records)."""
    path = out / "farm" / "results.jsonl"
    found: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return found
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        metrics = {k: v.get("value") for k, v in (rec.get("metrics") or {}).items() if isinstance(v, dict)}
        found[rec["artifact"]["name"]] = {"status": rec.get("status"), **metrics}
    return found
