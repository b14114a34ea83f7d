"""Field telemetry in the results store (harness/history: SQLite or PostgreSQL, migration 2).

Same contract as TelemetryDir: a window is keyed by (model, device class, end, length) and a re-import
replaces it in one transaction; sampled outputs are keyed by (model, device class, prompt, time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from harness.history.db import StoreUrl, connect
from harness.records import now_rfc3339
from harness.telemetry import contract as c
from harness.telemetry.window import Window


class TelemetryDb:
    def __init__(self, url: StoreUrl) -> None:
        self.url = url
        self.conn = connect(url)  # opens and migrates (refuses a store newer than this edgefarm)

    def describe(self) -> str:
        return f"results store {self.url}"

    def close(self) -> None:
        self.conn.close()

    def put_windows(self, windows: Iterable[Window], source: str) -> int:
        rows = [(w.model, w.model_version, w.device_class, w.end, w.end - w.start, source, now_rfc3339(),
                 json.dumps(w.to_dict(), sort_keys=True)) for w in windows]
        with self.conn.transaction() as t:
            t.executemany(
                "INSERT INTO telemetry_windows (model, model_version, device_class, window_end, window_s, source, "
                "ingested_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (model, device_class, window_end, window_s) DO UPDATE SET "
                "model_version = excluded.model_version, source = excluded.source, "
                "ingested_at = excluded.ingested_at, body = excluded.body", rows)
        return len(rows)

    def put_samples(self, samples: Iterable[c.SampleRecord]) -> int:
        rows = [(s.model_sha256, s.model_version, s.device_class, s.prompt_id, s.time, s.output) for s in samples]
        with self.conn.transaction() as t:
            before = int(t.execute("SELECT COUNT(*) FROM telemetry_samples").fetchone()[0])
            t.executemany("INSERT INTO telemetry_samples (model, model_version, device_class, prompt_id, t, output) "
                          "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
            after = int(t.execute("SELECT COUNT(*) FROM telemetry_samples").fetchone()[0])
        return after - before

    def windows(self, model: str) -> list[Window]:
        where = f"{self.describe()}: telemetry_windows"
        rows = self.conn.execute("SELECT body FROM telemetry_windows WHERE model = ? OR model_version = ? "
                                 "ORDER BY device_class, window_end", (model, model)).fetchall()
        return [Window.from_dict(json.loads(str(r[0])), where) for r in rows]

    def samples(self, model: str) -> list[c.SampleRecord]:
        rows = self.conn.execute("SELECT t, model_version, model, device_class, prompt_id, output FROM "
                                 "telemetry_samples WHERE model = ? OR model_version = ? ORDER BY t",
                                 (model, model)).fetchall()
        return [c.SampleRecord(float(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])) for r in rows]
