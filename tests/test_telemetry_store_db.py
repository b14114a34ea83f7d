"""Field telemetry in the results store (SQLite and a real PostgreSQL): import, re-import, drift from it,
and the history commands still open the same store."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.telemetry import contract as c
from harness.telemetry import traffic
from harness.telemetry.policy import DEFAULT_POLICY

sys.path.insert(0, str(Path(__file__).parent))
from history_helpers import postgres_server  # noqa: E402

SHA = "7" * 64
DAY = 86400.0
END = math.floor(1_790_000_000 / DAY) * DAY
_SEQ = itertools.count()


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    yield from postgres_server()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    return str(request.getfixturevalue("pg").create_db(f"tel{next(_SEQ)}"))


@pytest.fixture(scope="module")
def field_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = traffic.TrafficSpec("8.0.0", SHA, "pixel7", requests_per_h=250,
                               steps=(traffic.Step(END - 6 * 3600, oom_rate=0.03),))
    p = tmp_path_factory.mktemp("field") / "field.jsonl"
    with open(p, "w") as fh:
        for sl in traffic.slices(spec, END - 8 * DAY, END, 3600.0, seed=9):
            fh.writelines(json.dumps(c.request_line(r)) + "\n" for r in traffic.records(spec, sl))
        fh.write(json.dumps(c.sample_line(c.SampleRecord(END - 60, "8.0.0", SHA, "pixel7", "p1", "out"))) + "\n")
    return p


def cli(*args: str, db: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGEFARM_DB": db}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


def test_import_reimport_and_drift_from_the_store(db: str, field_jsonl: Path, tmp_path: Path) -> None:
    for _ in range(2):
        r = cli("telemetry", "--jsonl", str(field_jsonl), db=db, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "results store" in r.stdout
    assert "0 new sampled outputs" in r.stdout  # the second import added nothing
    assert not (tmp_path / "telemetry").exists()  # nothing went to a directory
    from harness.history.db import parse_url
    from harness.telemetry.store_db import TelemetryDb

    store = TelemetryDb(parse_url(db))
    try:
        ws = store.windows("8.0.0")
        assert len(ws) == 8 * 4 and len({w.key for w in ws}) == len(ws)  # replaced, not doubled
        assert [s.prompt_id for s in store.samples(SHA)] == ["p1"]
    finally:
        store.close()
    d = cli("drift", "--policy", str(DEFAULT_POLICY), "--model", SHA, "--out", str(tmp_path / "r"), db=db,
            cwd=tmp_path)
    assert d.returncode == 1, d.stdout + d.stderr
    rep = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert rep["verdict"] == "rollback" and rep["source"].startswith("store results store")
    h = cli("history", "list", db=db, cwd=tmp_path)
    assert h.returncode == 0, h.stderr
