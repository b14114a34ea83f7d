"""The results store on SQLite and on a real PostgreSQL: ingest, idempotence, verdicts, baselines, trends."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UserError
from harness.history.baseline import resolve_baseline
from harness.history.db import parse_url
from harness.history.ingest import Provenance, read_run
from harness.history.store import Store
from history_helpers import cli, derive_night, postgres_server, real_run

_DB_SEQ = itertools.count()


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    yield from postgres_server()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, tiny_samples: dict[str, Path], fast_profiles: Path) -> Path:
    return real_run(tmp_path_factory.mktemp("run") / "run", tiny_samples, fast_profiles, "onnx", "gguf")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    pg = request.getfixturevalue("pg")
    return str(pg.create_db(f"t{next(_DB_SEQ)}"))


def main_prov() -> Provenance:
    return Provenance("main", "0123456789abcdef", "acme/students")


def add(db: str, run: Path, prov: Provenance | None = None) -> Any:
    with Store(parse_url(db)) as s:
        return s.ingest(read_run(run, provenance=prov or main_prov()))


def test_add_is_idempotent_and_keeps_every_record(db: str, template: Path, tmp_path: Path) -> None:
    r = cli("history", "add", str(template), "--db", db, env={"EDGEFARM_BRANCH": "main"})
    assert r.returncode == 0, r.stderr
    assert "recorded: 2 record(s) added" in r.stdout
    again = cli("history", "add", str(template), "--db", db)
    assert again.returncode == 0 and "already recorded: 0 record(s) added, 2 already there" in again.stdout
    with Store(parse_url(db)) as s:
        (run,) = s.runs()
        assert run.records == 2 and run.branch == "main" and run.verdict is None
        recs = s.run_records(run.run_id)
    originals = sorted((json.loads(x) for x in (template / "results.jsonl").read_text().splitlines()),
                       key=lambda d: (d["device"]["name"], d["artifact"]["name"]))
    assert [r.to_dict() for r in recs] == originals  # what comes back is the record, unchanged


def test_a_gate_verdict_added_later_fills_in(db: str, template: Path, tmp_path: Path) -> None:
    add(db, template)
    gate = cli("gate", str(template), "--json", str(tmp_path / "gate.json"))
    assert gate.returncode in (0, 1), gate.stderr
    verdict = json.loads((tmp_path / "gate.json").read_text())["verdict"]
    r = cli("history", "add", str(template), "--db", db, "--gate", str(tmp_path / "gate.json"))
    assert r.returncode == 0 and "verdict set" in r.stdout, r.stdout + r.stderr
    with Store(parse_url(db)) as s:
        assert s.runs()[0].verdict == verdict


def test_last_pass_picks_the_newest_passing_cell_per_device_and_artifact(db: str, template: Path,
                                                                          tmp_path: Path) -> None:
    onnx = next(json.loads(x)["artifact"]["name"] for x in (template / "results.jsonl").read_text().splitlines()
                if '"onnx"' in x)
    add(db, derive_night(template, tmp_path / "n1", 1, scale=1.0, verdict="pass"))
    add(db, derive_night(template, tmp_path / "n2", 2, scale=1.1, verdict="fail", fail_cells=(onnx,)))
    add(db, derive_night(template, tmp_path / "n3", 3, scale=1.2, verdict="fail", fail_cells=(onnx,)),
        Provenance("feature-x", "f" * 40, None))  # newer and passing cells, but another branch
    add(db, derive_night(template, tmp_path / "n4", 4, scale=1.3))  # ungated: not a pass
    b = resolve_baseline("last-pass:main", db=db)
    by_artifact = {r.artifact.name: r.run_id for r in b.records}
    assert by_artifact[onnx] == "night-001"  # night 2 failed this cell
    (other,) = set(by_artifact) - {onnx}
    assert by_artifact[other] == "night-002"  # night 2's other cell passed
    assert "night-001" in b.description and "night-002" in b.description


def test_tags_run_ids_and_directories_resolve(db: str, template: Path, tmp_path: Path) -> None:
    add(db, derive_night(template, tmp_path / "n1", 1, verdict="pass"))
    add(db, derive_night(template, tmp_path / "n2", 2, verdict="pass"))
    assert cli("history", "tag", "night-001", "release:1.4", "--db", db).returncode == 0
    assert {r.run_id for r in resolve_baseline("release:1.4", db=db).records} == {"night-001"}
    moved = cli("history", "tag", "night-002", "release:1.4", "--db", db)
    assert "moved from night-001" in moved.stdout
    assert {r.run_id for r in resolve_baseline("release:1.4", db=db).records} == {"night-002"}
    assert {r.run_id for r in resolve_baseline("night-001", db=db).records} == {"night-001"}
    assert len(resolve_baseline(str(template), db=db).records) == 2
    r = cli("history", "baseline", "release:9.9", "--db", db)  # 1: the store answered, nothing matches
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "release:9.9" in r.stderr
    r = cli("history", "baseline", "last-pass:main", "--db", "postgresql://nobody@127.0.0.1:1/none")
    assert r.returncode == 2 and "cannot connect" in r.stderr and "Traceback" not in r.stderr  # 2: broken store
    r = cli("history", "tag", "no-such-run", "x", "--db", db)
    assert r.returncode == 2 and "no-such-run" in r.stderr and "Traceback" not in r.stderr


def test_no_passing_run_is_an_error_not_an_empty_baseline(db: str, template: Path, tmp_path: Path) -> None:
    add(db, derive_night(template, tmp_path / "n1", 1, verdict="fail",
                         fail_cells=tuple(json.loads(x)["artifact"]["name"]
                                          for x in (template / "results.jsonl").read_text().splitlines())))
    with pytest.raises(UserError, match="no run on branch 'main' passed"):
        resolve_baseline("last-pass:main", db=db)


def test_trend_marks_the_one_level_change(db: str, template: Path, tmp_path: Path) -> None:
    # 20 nights at one level then 20 at 70% of it, with +-2% night-to-night noise: one change point, at night 20.
    noise = [1.0 + 0.02 * ((i * 7919) % 11 - 5) / 5 for i in range(40)]
    for i in range(40):
        add(db, derive_night(template, tmp_path / f"n{i}", i, scale=(1.0 if i < 20 else 0.7) * noise[i]))
    rec = json.loads((template / "results.jsonl").read_text().splitlines()[0])
    metric = "load_time_ms"
    r = cli("history", "trend", "--device", "local", "--artifact", rec["artifact"]["name"], "--metric", metric,
            "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert len(t["points"]) == 40
    assert [c["index"] for c in t["change_points"]] == [20]
    assert t["change_points"][0]["kind"] == "improvement" and t["change_points"][0]["run_id"] == "night-020"
    text = cli("history", "trend", "--device", "local", "--artifact", rec["artifact"]["name"], "--metric", metric,
               "--db", db).stdout
    assert text.count("<--") == 1 and "night-020" in text.splitlines()[21]
    missing = cli("history", "trend", "--device", "local", "--artifact", "nope.onnx", "--metric", metric, "--db", db)
    assert missing.returncode == 2 and "nope.onnx" in missing.stderr


def test_concurrent_ingests_lose_nothing(db: str, template: Path, tmp_path: Path) -> None:
    nights = [derive_night(template, tmp_path / f"n{i}", i) for i in range(12)]
    # Every night twice, from 8 processes at once: each stored exactly once.
    args = [["history", "add", str(n), "--db", db] for n in nights + nights]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: cli(*a), args))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    with Store(parse_url(db)) as s:
        runs = s.runs(limit=100)
        assert len(runs) == 12 and all(r.records == 2 for r in runs)
        assert len(s.series("local", s.run_records("night-000")[0].artifact.name, "load_time_ms")) == 12


def test_bad_run_directories_are_one_line_errors(tmp_path: Path, template: Path) -> None:
    db = str(tmp_path / "h.db")
    bad = tmp_path / "bad"
    bad.mkdir()
    r = cli("history", "add", str(bad), "--db", db)
    assert r.returncode == 2 and "no results.jsonl" in r.stderr
    (bad / "results.jsonl").write_text("{not json\n{}\n")
    r = cli("history", "add", str(bad), "--db", db)
    assert r.returncode == 2 and "results.jsonl:1" in r.stderr
    good = derive_night(template, tmp_path / "g", 1)
    (good / "run.json").write_text(json.dumps({"run_id": 7}))
    r = cli("history", "add", str(good), "--db", db)
    assert r.returncode == 2 and "run.json" in r.stderr and "run_id" in r.stderr
    good2 = derive_night(template, tmp_path / "g2", 2)
    (good2 / "gate.json").write_text("[]")
    assert "gate.json" in cli("history", "add", str(good2), "--db", db).stderr
    r = cli("history", "add", str(good2), "--db", "mysql://x/y")
    assert r.returncode == 2 and "mysql://" in r.stderr
    assert cli("history", "list").returncode == 2  # no store configured: says so


def test_a_store_from_a_newer_edgefarm_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    Store(parse_url(str(db))).close()
    with sqlite3.connect(db) as c:
        c.execute("INSERT INTO edgefarm_schema VALUES (99, 'x')")
    r = cli("history", "list", "--db", str(db))
    assert r.returncode == 2 and "schema version 99" in r.stderr and "Traceback" not in r.stderr


def test_old_run_json_and_merged_directories_are_read(tmp_path: Path, template: Path) -> None:
    old = derive_night(template, tmp_path / "old", 1)
    (old / "run.json").write_text(json.dumps({"run_id": "night-001", "started_at": "2026-10-02T01:30:00Z",
                                              "harness_version": "0.1.0", "devices": ["local"],
                                              "artifacts": ["a.onnx"]}))
    assert read_run(old).run_id == "night-001"
    merged = tmp_path / "merged"
    assert cli("merge", str(merged), str(derive_night(template, tmp_path / "a", 2)),
               str(derive_night(template, tmp_path / "b", 3))).returncode == 0
    data = read_run(merged)
    assert {"night-002", "night-003"} <= set(data.run_id.split("+")) and len(data.records) == 4  # merge names its shards
    assert read_run(merged).run_id == data.run_id  # the same directory, the same id: re-adding is a no-op


def test_the_html_report_draws_each_gated_metrics_trend_with_its_change_point(template: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    noise = [1.0 + 0.02 * ((i * 7919) % 11 - 5) / 5 for i in range(16)]
    nights = [derive_night(template, tmp_path / f"n{i}", i, scale=(1.0 if i < 8 else 1.5) * noise[i])
              for i in range(16)]
    for n in nights:
        add(db, n)
    html = tmp_path / "r.html"
    r = cli("gate", str(nights[-1]), "--baseline", "night-000", "--html", str(html), env={"EDGEFARM_DB": db})
    assert r.returncode in (0, 1), r.stderr
    text = html.read_text()
    assert 'data-chart="trend"' in text and "latency_ms_p50 of local" in text
    assert 'data-mark="change-point" data-value="8"' in text and "regression +" in text
    r = cli("gate", str(nights[-1]), "--baseline", str(nights[0]), "--html", str(html), env={"EDGEFARM_DB": ""})
    assert r.returncode in (0, 1) and 'data-chart="trend-' not in html.read_text()
