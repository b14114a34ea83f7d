"""A year of a big farm's nights in the results store: ingest rate and trend query time, SQLite and PostgreSQL.

    python benchmarks/history_scale.py                       # 100 devices x 20 artifacts x 365 nights, both stores
    python benchmarks/history_scale.py --nights 30 --engines sqlite   # a quick look

Each night is one run of every artifact on every device (2,000 records a night at full size), ingested through
the same Store.ingest that `edgefarm history add` uses, one transaction a night. Records are real Record
objects with 6 metrics each and no raw samples (a year of raw samples is gigabytes whatever the store).
Then `--queries` random (device, artifact, metric) series are read back whole (365 points) and run through
the change-point detection, and the times printed. PostgreSQL is a throwaway server on loopback
(harness/history/pglocal.py), fsync off; SQLite is a file in a temporary directory, WAL, synchronous=NORMAL.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.history.db import parse_url  # noqa: E402
from harness.history.ingest import Provenance, RunData  # noqa: E402
from harness.history.store import Store  # noqa: E402
from harness.history.trend import trend  # noqa: E402
from harness.provenance import Provenance as RecordProvenance  # noqa: E402
from harness.records import ArtifactInfo, DeviceInfo, Metric, Record  # noqa: E402

METRICS = {"latency_ms_p50": "ms", "latency_ms_p95": "ms", "latency_ms_p99": "ms", "peak_rss_mib": "MiB",
           "load_time_ms": "ms", "throughput_per_s": "1/s"}


_TEMPLATES: dict[tuple[str, str], dict[str, Any]] = {}


def _body(r: Record) -> str:
    """Record.to_dict() is deep-copying and slow; serialise a per-cell template with this night's figures."""
    t = _TEMPLATES.get((r.device.name, r.artifact.name))
    if t is None:
        t = _TEMPLATES[(r.device.name, r.artifact.name)] = r.to_dict()
    d = {**t, "run_id": r.run_id, "started_at": r.started_at, "finished_at": r.finished_at,
         "artifact": {**t["artifact"], "sha256": r.artifact.sha256},
         "metrics": {k: {**t["metrics"][k], "value": m.value} for k, m in r.metrics.items()}}
    return json.dumps(d, sort_keys=True)


def night(i: int, devices: int, artifacts: int, rng: random.Random) -> RunData:
    day = datetime(2026, 1, 1, 1, 30, tzinfo=timezone.utc) + timedelta(days=i)
    ts = day.isoformat().replace("+00:00", "Z")
    run_id = f"night-{i:04d}"
    recs = []
    for d in range(devices):
        dev = DeviceInfo(f"dev{d:03d}", "adb", "phone", 8192, {"model": f"Pixel {d % 9}", "abi": "arm64-v8a"})
        for a in range(artifacts):
            art = ArtifactInfo(f"/students/s{a:02d}.onnx", f"s{a:02d}.onnx", "onnx", 10_000_000 + a,
                               f"{a:02d}{i // 30:02d}".ljust(64, "0"))  # a new student build every month
            base = 5.0 + d * 0.01 + a
            metrics = {name: Metric(base * rng.uniform(0.97, 1.03) * (k + 1), unit, n=300,
                                    ci=(base * 0.95, base * 1.05), confidence=0.95)
                       for k, (name, unit) in enumerate(METRICS.items())}
            recs.append(Record(run_id, dev, art, "ok", ts, ts, runtime={"name": "onnxruntime", "version": "1.32"},
                               workload={"batch": 1}, metrics=metrics, provenance=RecordProvenance(harness_version="0.1.0")))
    bodies = [_body(r) for r in recs]  # the JSON lines a results.jsonl would hold
    return RunData(run_id, ts, ts, "0.1.0", None, 0, recs, "pass", bodies=bodies,
                   provenance=Provenance("main", f"{i:040x}", "acme/students"), host="bench", source="bench")


def bench(url: str, args: argparse.Namespace) -> None:
    rng = random.Random(1)
    store = Store(parse_url(url))
    engine = store.url.engine
    t_gen = t_ing = 0.0
    records = 0
    for i in range(args.nights):
        t0 = time.perf_counter()
        data = night(i, args.devices, args.artifacts, rng)
        t1 = time.perf_counter()
        store.ingest(data)
        t_ing += time.perf_counter() - t1
        t_gen += t1 - t0
        records += len(data.records)
        if (i + 1) % max(1, args.nights // 10) == 0:
            # A trend query at this length of history too, so a run stopped early still says something.
            trend(store, "dev000", "s00.onnx", "load_time_ms")
            qt = []
            for q in range(5):
                t2 = time.perf_counter()
                trend(store, f"dev{(q * 37) % args.devices:03d}", f"s{(q * 7) % args.artifacts:02d}.onnx",
                      "latency_ms_p95")
                qt.append(time.perf_counter() - t2)
            print(f"  {engine}: {i + 1} nights, {records} records, {records / t_ing:,.0f} records/s "
                  f"({records * len(METRICS) / t_ing:,.0f} metric rows/s); trend of {i + 1} points: median "
                  f"{statistics.median(qt) * 1000:.1f} ms, max {max(qt) * 1000:.1f} ms", flush=True)
    print(f"{engine}: ingested {args.nights} nights = {records:,} records ({records * len(METRICS):,} metric points) "
          f"in {t_ing:.1f} s: {records / t_ing:,.0f} records/s, {args.nights / t_ing:.2f} nights/s "
          f"(generating them took {t_gen:.1f} s more, not counted)")
    trend(store, "dev000", "s00.onnx", "load_time_ms")  # imports scipy/otava once, outside the timings
    qrng = random.Random(2)
    series_t, trend_t, npts = [], [], []
    for _ in range(args.queries):
        d, a, m = f"dev{qrng.randrange(args.devices):03d}", f"s{qrng.randrange(args.artifacts):02d}.onnx", \
            qrng.choice(list(METRICS))
        t0 = time.perf_counter()
        pts = store.series(d, a, m)
        t1 = time.perf_counter()
        tr = trend(store, d, a, m)
        t2 = time.perf_counter()
        series_t.append(t1 - t0)
        trend_t.append(t2 - t1)
        npts.append(len(pts))
        assert len(tr.points) == args.nights
    print(f"{engine}: trend query of a year ({min(npts)}-{max(npts)} points), {args.queries} random series: "
          f"series read median {statistics.median(series_t) * 1000:.1f} ms, max {max(series_t) * 1000:.1f} ms; "
          f"read + change points median {statistics.median(trend_t) * 1000:.1f} ms, max {max(trend_t) * 1000:.1f} ms "
          f"(goal < 1000 ms)")
    t0 = time.perf_counter()
    recs, runs = store.last_pass("main")
    print(f"{engine}: last-pass:main baseline ({len(recs)} cells from {len(runs)} run(s)) resolved in "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--artifacts", type=int, default=20)
    ap.add_argument("--nights", type=int, default=365)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--engines", default="sqlite,postgresql")
    args = ap.parse_args()
    print(f"{args.devices} devices x {args.artifacts} artifacts x {args.nights} nights, {len(METRICS)} metrics a record")
    for engine in args.engines.split(","):
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                bench(str(Path(tmp) / "history.db"), args)
        elif engine == "postgresql":
            from harness.history.pglocal import LocalPostgres

            with LocalPostgres() as pg:
                bench(pg.create_db("bench"), args)
        else:
            ap.error(f"unknown engine {engine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
