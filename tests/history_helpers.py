"""Shared parts of the history tests: a real PostgreSQL on loopback, real runs, and nights derived from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=timeout)


def postgres_server() -> Iterator[Any]:
    """A session's PostgreSQL, or a skip saying why it cannot run here."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'psycopg[binary]' (ci/setup.sh --test)")
    from harness.history.pglocal import LocalPostgres, PostgresUnavailable

    try:
        pg = LocalPostgres().start()
    except PostgresUnavailable as e:
        pytest.skip(f"PostgreSQL cannot run here ({e}); ci/setup.sh --test installs it")
    try:
        yield pg
    finally:
        pg.stop()


def real_run(out: Path, samples: dict[str, Path], profiles: Path, *fmts: str) -> Path:
    """`edgefarm run` on the local device for real: the template every derived night copies."""
    args = ["run", "--device", "local", "--profiles", str(profiles), "--out", str(out), "-q"]
    for f in fmts:
        args += ["--artifact", str(samples[f])]
    r = cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def derive_night(template: Path, out: Path, night: int, *, scale: float = 1.0, verdict: str | None = None,
                 fail_cells: tuple[str, ...] = ()) -> Path:
    """A copy of a real run as if measured on another night: new run id and times, metric values x scale.

    `verdict` writes a gate.json (edgefarm.gate/1) with that verdict; cells whose artifact is in `fail_cells`
    get outcome fail, the others pass.
    """
    out.mkdir(parents=True)
    day = f"2026-10-{night + 1:02d}T01:30:00.000000Z"
    run_id = f"night-{night:03d}"
    recs = []
    for line in (template / "results.jsonl").read_text().splitlines():
        d = json.loads(line)
        d["run_id"], d["started_at"], d["finished_at"] = run_id, day, day
        for m in d["metrics"].values():
            if isinstance(m.get("value"), (int, float)):
                m["value"] = m["value"] * scale
            if m.get("ci"):
                m["ci"] = [x * scale for x in m["ci"]]
        recs.append(d)
    (out / "results.jsonl").write_text("".join(json.dumps(d) + "\n" for d in recs))
    meta = json.loads((template / "run.json").read_text())
    meta.update(run_id=run_id, started_at=day, finished_at=day)
    (out / "run.json").write_text(json.dumps(meta))
    if verdict is not None:
        cells = [{"device": d["device"]["name"], "artifact": d["artifact"]["name"],
                  "outcome": "fail" if d["artifact"]["name"] in fail_cells else "pass"} for d in recs]
        (out / "gate.json").write_text(json.dumps({"schema": "edgefarm.gate/1", "verdict": verdict, "cells": cells}))
    return out
