"""What the store keeps of a run directory: its manifest, records, gate verdict, and where the code came from.

Reads run.json in either shape (the early {run_id, started_at, devices, artifacts:[names]} and the manifest
edgefarm.run/1), or none at all (a directory made by `edgefarm merge`), then results.jsonl and gate.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.records import RESULTS_FILE, Record, iter_records

GATE_FILE = "gate.json"  # `edgefarm gate RUN --json RUN/gate.json` puts the verdict where ingest finds it
MANIFEST_FILE = "run.json"


@dataclass
class Provenance:
    """Which code of the students' repository a run measured."""

    branch: str | None = None
    commit: str | None = None
    repo: str | None = None

    @classmethod
    def detect(cls, cwd: Path | None = None) -> Provenance:
        """CI variables first (GitHub, GitLab), then `git` in the working directory; None where unknown."""
        env = os.environ
        branch = env.get("EDGEFARM_BRANCH") or env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") \
            or env.get("CI_COMMIT_REF_NAME")
        commit = env.get("EDGEFARM_COMMIT") or env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA")
        repo = env.get("GITHUB_REPOSITORY") or env.get("CI_PROJECT_PATH")
        if branch is None:
            branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
            branch = None if branch == "HEAD" else branch  # detached: no branch to speak of
        if commit is None:
            commit = _git(["rev-parse", "HEAD"], cwd)
        return cls(branch or None, commit or None, repo or None)


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


@dataclass
class RunData:
    """One run directory, read and checked, ready to store."""

    run_id: str
    started_at: str
    finished_at: str | None
    harness_version: str | None
    interrupted: str | None
    exit_code: int | None
    records: list[Record]
    verdict: str | None  # the gate's overall verdict, where the run was gated
    outcomes: dict[tuple[str, str], str] = field(default_factory=dict)  # (device, artifact name) -> cell outcome
    provenance: Provenance = field(default_factory=Provenance)
    host: str | None = None
    source: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    bodies: list[str] = field(default_factory=list)  # each record's JSON as read; empty: serialise the records


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected a JSON object")
    return d


def _str(d: dict[str, Any], key: str, path: Path) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise UserError(f"{path}: key '{key}' should be a string, got {type(v).__name__}")
    return v


def read_run(run_dir: Path, *, gate_file: Path | None = None, provenance: Provenance | None = None) -> RunData:
    """Read a run directory for the store; errors name the file at fault."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run directory")
    results = run_dir / RESULTS_FILE
    if not results.is_file():
        raise UserError(f"{run_dir}: no {RESULTS_FILE} here; is this an edgefarm run directory?")
    records = list(iter_records(results))
    # The stored body is the line as written (re-serialising a record costs more than the whole insert);
    # iter_records skips blank lines and only a torn last line, so the first len(records) lines are theirs.
    lines = [line for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    manifest_path = run_dir / MANIFEST_FILE
    manifest = _read_json(manifest_path) or {}
    run_id = _str(manifest, "run_id", manifest_path)
    if not run_id:
        ids = sorted({r.run_id for r in records})
        if not ids:
            raise UserError(f"{run_dir}: no run.json and no records: nothing to record")
        # A merged directory holds several hosts' runs: name it by what it holds, so re-adding it is a no-op.
        run_id = ids[0] if len(ids) == 1 else "merged-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    started = _str(manifest, "started_at", manifest_path) or min((r.started_at for r in records), default=None)
    if not started:
        raise UserError(f"{manifest_path}: no started_at and no records to take it from")
    exit_code = manifest.get("exit_code")
    data = RunData(
        run_id=run_id, started_at=started,
        finished_at=_str(manifest, "finished_at", manifest_path) or max((r.finished_at for r in records), default=None),
        harness_version=_str(manifest, "harness_version", manifest_path),
        interrupted=_str(manifest, "interrupted", manifest_path),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        records=records, bodies=lines[:len(records)], verdict=None, provenance=provenance or Provenance.detect(),
        host=os.uname().nodename, source=str(run_dir.resolve()), manifest=manifest)
    _attach_gate(data, gate_file or run_dir / GATE_FILE, explicit=gate_file is not None)
    return data


def _attach_gate(data: RunData, path: Path, *, explicit: bool) -> None:
    gate = _read_json(path)
    if gate is None:
        if explicit:
            raise UserError(f"{path}: no such gate verdict file", hint="write it with `edgefarm gate RUN --json FILE`")
        return
    if gate.get("schema") != "edgefarm.gate/1" or not isinstance(gate.get("verdict"), str):
        raise UserError(f"{path}: not an edgefarm gate verdict (schema edgefarm.gate/1)")
    data.verdict = gate["verdict"]
    for cell in gate.get("cells") or []:
        if isinstance(cell, dict) and isinstance(cell.get("outcome"), str):
            data.outcomes[(str(cell.get("device")), str(cell.get("artifact")))] = cell["outcome"]
