"""The results store: runs, their records and verdicts, tags, and per-metric series for trends.

Ingest is idempotent: a run is keyed by its run id and a record by (run, device, artifact sha256), so adding
a directory twice, or from two hosts at once, stores it once. A second add may fill in what the first lacked
(a gate verdict written later, records appended since), never duplicate or overwrite a measurement.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from harness.errors import UserError
from harness.history.db import Connection, StoreUrl, connect
from harness.history.ingest import RunData
from harness.records import Record, now_rfc3339


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started_at: str
    branch: str | None
    commit: str | None
    verdict: str | None
    records: int
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Point:
    """One night of one series: a metric of one device x artifact in one run."""

    run_id: str
    started_at: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int | None
    branch: str | None
    commit: str | None
    artifact_sha256: str


@dataclass(frozen=True)
class IngestResult:
    run_id: str
    new_run: bool
    records_added: int
    records_known: int
    verdict_set: bool


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


class Store:
    """One open store. Use as a context manager, or call close()."""

    def __init__(self, url: StoreUrl) -> None:
        self.url = url
        self.conn: Connection = connect(url)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------------------------
    def ingest(self, run: RunData) -> IngestResult:
        """Store a run; a no-op for what is already there. One transaction: a reader sees all of it or none."""
        c = self.conn
        p = run.provenance
        with c.transaction():
            new = c.execute(
                "INSERT INTO runs (run_id, started_at, finished_at, ingested_at, branch, commit_sha, repo, "
                "harness_version, host, verdict, exit_code, interrupted, source, manifest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                (run.run_id, run.started_at, run.finished_at, now_rfc3339(), p.branch, p.commit, p.repo,
                 run.harness_version, run.host, run.verdict, run.exit_code, run.interrupted, run.source,
                 json.dumps(run.manifest, sort_keys=True))).rowcount == 1
            verdict_set = new and run.verdict is not None
            if not new and run.verdict is not None:
                # A verdict arrives after the run was recorded (auto-ingest at the end of `run`, gate later).
                verdict_set = c.execute("UPDATE runs SET verdict = ? WHERE run_id = ? AND verdict IS NULL",
                                        (run.verdict, run.run_id)).rowcount == 1
            # Batched: what this run already holds, insert the rest (DO NOTHING covers a racing host), read ids.
            before = {(str(d), str(h)) for d, h in c.execute(
                "SELECT device, artifact_sha256 FROM records WHERE run_id = ?", (run.run_id,)).fetchall()}
            bodies = run.bodies or [json.dumps(r.to_dict(), sort_keys=True, allow_nan=False) for r in run.records]
            fresh = [(rec, body) for rec, body in zip(run.records, bodies)
                     if (rec.device.name, rec.artifact.sha256) not in before]
            c.executemany(
                "INSERT INTO records (run_id, device, artifact, artifact_sha256, status, outcome, started_at, "
                "fingerprint, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, device, artifact_sha256) DO NOTHING",
                [(run.run_id, rec.device.name, rec.artifact.name, rec.artifact.sha256, rec.status,
                  run.outcomes.get((rec.device.name, rec.artifact.name)), run.started_at,
                  json.dumps(rec.device.fingerprint, sort_keys=True), body) for rec, body in fresh])
            if run.outcomes:  # a verdict for records stored before the gate ran
                c.executemany("UPDATE records SET outcome = ? WHERE run_id = ? AND device = ? AND artifact = ? "
                              "AND outcome IS NULL",
                              [(o, run.run_id, d, a) for (d, a), o in run.outcomes.items()])
            ids = {(str(d), str(h)): int(i) for i, d, h in c.execute(
                "SELECT id, device, artifact_sha256 FROM records WHERE run_id = ?", (run.run_id,)).fetchall()}
            metric_rows: list[tuple[Any, ...]] = []
            for rec, _body in fresh:
                if rec.status != "ok":
                    continue  # a failed run's figures are not a point of the trend
                rid = ids[(rec.device.name, rec.artifact.sha256)]
                for name, m in rec.metrics.items():
                    value = _finite(m.value)
                    if value is None:
                        continue
                    lo, hi = (m.ci if m.ci else (None, None))
                    metric_rows.append((rid, rec.device.name, rec.artifact.name, name, run.started_at, value,
                                        _finite(lo), _finite(hi), m.n))
            c.executemany("INSERT INTO metrics (record_id, device, artifact, metric, started_at, value, ci_low, "
                          "ci_high, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", metric_rows)
            added, known = len(ids) - len(before), len(run.records) - (len(ids) - len(before))
        return IngestResult(run.run_id, new, added, known, verdict_set)

    def tag(self, tag: str, run_id: str) -> str | None:
        """Point a tag at a run (moving it if it pointed elsewhere); returns the run it pointed at before."""
        if not tag.strip() or tag != tag.strip():
            raise UserError(f"tag {tag!r}: empty or padded with spaces")
        self.require_run(run_id)
        with self.conn.transaction() as c:
            prev = c.execute("SELECT run_id FROM tags WHERE tag = ?", (tag,)).fetchone()
            c.execute("INSERT INTO tags (tag, run_id, tagged_at) VALUES (?, ?, ?) "
                      "ON CONFLICT (tag) DO UPDATE SET run_id = excluded.run_id, tagged_at = excluded.tagged_at",
                      (tag, run_id, now_rfc3339()))
        return None if prev is None or prev[0] == run_id else str(prev[0])

    # --- reading -----------------------------------------------------------------------------------------
    def require_run(self, run_id: str) -> None:
        if self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise UserError(f"run {run_id!r} is not in the store {self.url}", hint="`edgefarm history list`")

    def tagged(self, tag: str) -> str | None:
        row = self.conn.execute("SELECT run_id FROM tags WHERE tag = ?", (tag,)).fetchone()
        return None if row is None else str(row[0])

    def has_run(self, run_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def runs(self, *, branch: str | None = None, limit: int = 50) -> list[RunRow]:
        """Newest first."""
        where, params = ("WHERE r.branch = ?", [branch]) if branch else ("", [])
        rows = self.conn.execute(
            "SELECT r.run_id, r.started_at, r.branch, r.commit_sha, r.verdict, "
            "(SELECT COUNT(*) FROM records x WHERE x.run_id = r.run_id) "
            f"FROM runs r {where} ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?", (*params, limit)).fetchall()
        tags: dict[str, list[str]] = {}
        for t, rid in self.conn.execute("SELECT tag, run_id FROM tags ORDER BY tag").fetchall():
            tags.setdefault(str(rid), []).append(str(t))
        return [RunRow(str(r[0]), str(r[1]), r[2], r[3], r[4], int(r[5]), tuple(tags.get(str(r[0]), [])))
                for r in rows]

    def run_records(self, run_id: str) -> list[Record]:
        self.require_run(run_id)
        rows = self.conn.execute("SELECT body FROM records WHERE run_id = ? ORDER BY device, artifact",
                                 (run_id,)).fetchall()
        return [Record.from_dict(json.loads(r[0])) for r in rows]

    def last_pass(self, branch: str) -> tuple[list[Record], list[str]]:
        """Per (device, artifact name): the newest ok record on `branch` whose gate passed.

        A cell passed when its own gate outcome is pass, or (where the gate file had no cells) its run's verdict
        is pass. Returns the records and the run ids they came from.
        """
        rows = self.conn.execute(
            "SELECT device, artifact, body, run_id FROM (SELECT x.device, x.artifact, x.body, x.run_id, "
            "ROW_NUMBER() OVER (PARTITION BY x.device, x.artifact ORDER BY x.started_at DESC, x.run_id DESC) AS k "
            "FROM records x JOIN runs r ON r.run_id = x.run_id WHERE r.branch = ? AND x.status = 'ok' AND "
            "(x.outcome = 'pass' OR (x.outcome IS NULL AND r.verdict = 'pass'))) newest WHERE k = 1 "
            "ORDER BY device, artifact", (branch,)).fetchall()
        chosen: dict[tuple[str, str], Record] = {}
        runs: list[str] = []
        for device, artifact, body, run_id in rows:
            chosen[(device, artifact)] = Record.from_dict(json.loads(body))
            if run_id not in runs:
                runs.append(str(run_id))
        return [chosen[k] for k in sorted(chosen)], runs

    def series(self, device: str, artifact: str, metric: str, *, branch: str | None = None,
               since: str | None = None) -> list[Point]:
        """The metric's points, oldest first (one index range scan: device, artifact, metric, time)."""
        sql = ("SELECT x.run_id, m.started_at, m.value, m.ci_low, m.ci_high, m.n, r.branch, r.commit_sha, "
               "x.artifact_sha256 FROM metrics m JOIN records x ON x.id = m.record_id "
               "JOIN runs r ON r.run_id = x.run_id WHERE m.device = ? AND m.artifact = ? AND m.metric = ?")
        params: list[Any] = [device, artifact, metric]
        if since:
            sql += " AND m.started_at >= ?"
            params.append(since)
        if branch:
            sql += " AND r.branch = ?"
            params.append(branch)
        rows = self.conn.execute(sql + " ORDER BY m.started_at, x.run_id", params).fetchall()
        return [Point(str(r[0]), str(r[1]), float(r[2]), r[3], r[4], r[5], r[6], r[7], str(r[8])) for r in rows]

    def cells(self) -> list[tuple[str, str, str]]:
        """(device, artifact, metric) triples that have a series."""
        rows = self.conn.execute("SELECT DISTINCT device, artifact, metric FROM metrics "
                                 "ORDER BY device, artifact, metric").fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]
