"""`edgefarm telemetry`: import field data (Prometheus, contract JSONL, OpenTelemetry JSON) into the store."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.errors import UserError


def parse_when(text: str, now: float, what: str) -> float:
    """'now', a duration back from now ('30d', '6h') or an RFC 3339 time -> Unix seconds."""
    from harness.telemetry.contract import parse_time
    from harness.telemetry.policy import duration_s

    if text == "now":
        return now
    try:
        return now - duration_s(text)
    except ValueError:
        pass
    try:
        return parse_time(text, what)
    except UserError:
        raise UserError(f"{what} {text!r}: expected 'now', a duration such as 30d or 6h, "
                        "or an RFC 3339 time with a zone") from None


def window_arg(text: str) -> float:
    from harness.telemetry.policy import duration_s

    try:
        return duration_s(text)
    except ValueError:
        raise UserError(f"--window {text!r}: expected a duration such as 1h, 6h or 1d") from None


def cmd_telemetry(args: argparse.Namespace) -> int:
    from harness.telemetry import contract as c
    from harness.telemetry.otel import read_windows
    from harness.telemetry.promql import fetch_windows
    from harness.telemetry.store import open_store, read_jsonl
    from harness.telemetry.window import Window, bin_records

    if not (args.prometheus or args.jsonl or args.otel):
        raise UserError("nothing to import: give --prometheus URL --model M, --jsonl FILE or --otel FILE")
    window_s = window_arg(args.window)
    store = open_store(Path(args.out), args.db)
    now = time.time()
    imported: list[Window] = []
    if args.prometheus:
        if not args.model:
            raise UserError("--prometheus needs --model SHA256|VERSION")
        start = parse_when(args.since, now, "--since")
        end = parse_when(args.until, now, "--until")
        ws = fetch_windows(args.prometheus, args.model, start, end, window_s)
        store.put_windows(ws, f"prometheus {args.prometheus} {args.model}")
        imported += ws
    n_samples = 0
    for f in args.jsonl or []:
        recs = read_jsonl(Path(f))
        ws = bin_records([r for r in recs if isinstance(r, c.RequestRecord)], window_s)
        store.put_windows(ws, f"jsonl {f}")
        imported += ws
        n_samples += store.put_samples(r for r in recs if isinstance(r, c.SampleRecord))
    for f in args.otel or []:
        ws = read_windows(Path(f), window_s)
        store.put_windows(ws, f"otel {f}")
        imported += ws
    per: dict[tuple[str, str], int] = {}
    for w in imported:
        per[(w.model, w.device_class)] = per.get((w.model, w.device_class), 0) + 1
    for (m, dc), n in sorted(per.items()):
        print(f"{m[:12]} {dc}: {n} windows of {args.window}")
    print(f"imported {len(imported)} windows and {n_samples} new sampled outputs into {store.describe()}")
    if not imported and not n_samples:
        raise UserError("no field data found for that selection and time range")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("telemetry", help="import field telemetry (Prometheus, JSONL, OpenTelemetry JSON)",
                       description="Import field data in contract v1 (harness/telemetry/README.md) into the "
                                   "telemetry store, as windows per model and device class.")
    p.add_argument("--prometheus", metavar="URL", help="Prometheus server base URL (reads /api/v1/query_range)")
    p.add_argument("--model", help="model sha256 or release name (with --prometheus)")
    p.add_argument("--since", default="30d", help="start: 'now', a duration back (30d) or RFC 3339 (default 30d)")
    p.add_argument("--until", default="now", help="end (default now)")
    p.add_argument("--jsonl", action="append", metavar="FILE", help="contract JSONL (requests and samples)")
    p.add_argument("--otel", action="append", metavar="FILE", help="OpenTelemetry OTLP/JSON metrics export")
    p.add_argument("--window", default="6h", help="window length (default 6h; match the drift policy's)")
    p.add_argument("--out", default="telemetry", help="store directory when no results store is configured "
                   "(default ./telemetry)")
    p.add_argument("--db", help="results store: a SQLite path or postgresql://... (default $EDGEFARM_DB)")
    p.set_defaults(func=cmd_telemetry)
