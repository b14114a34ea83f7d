"""`edgefarm history add|list|tag|trend|baseline`: the results store from the command line.

Exit codes: 0 done, 2 a usage/store error (one line). `trend --fail-on-regression` exits 1 when the newest
change point of the series is a regression; `baseline` exits 1 when the store holds nothing that matches.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.errors import UserError
from harness.history import add_run
from harness.history.baseline import NoBaseline, resolve_baseline
from harness.history.db import ENV_VAR, configured_url
from harness.history.store import Store
from harness.history.trend import format_trend, trend


def _store(args: argparse.Namespace) -> Store:
    url = configured_url(args.db)
    if url is None:
        raise UserError("no results store configured", hint=f"set {ENV_VAR} or pass --db")
    return Store(url)


def cmd_add(args: argparse.Namespace) -> int:
    for d in args.run_dir:
        r = add_run(Path(d), db=args.db, gate_file=Path(args.gate) if args.gate else None)
        what = "recorded" if r.new_run else "already recorded"
        extra = f"; verdict set" if r.verdict_set and not r.new_run else ""
        print(f"{d}: run {r.run_id} {what}: {r.records_added} record(s) added, {r.records_known} already there{extra}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = store.runs(branch=args.branch, limit=args.limit)
    for r in rows:
        tags = f"  [{', '.join(r.tags)}]" if r.tags else ""
        print(f"{r.started_at[:19]}  {r.run_id:<28} {r.branch or '-':<14} {(r.commit or '-')[:10]:<10} "
              f"{r.verdict or 'ungated':<12} {r.records:>4} record(s){tags}")
    if not rows:
        print("no runs recorded" + (f" on branch {args.branch}" if args.branch else ""))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    with _store(args) as store:
        prev = store.tag(args.tag, args.run_id)
    print(f"{args.tag} -> {args.run_id}" + (f" (moved from {prev})" if prev else ""))
    return 0


def cmd_trend(args: argparse.Namespace) -> int:
    with _store(args) as store:
        t = trend(store, args.device, args.artifact, args.metric, branch=args.branch, since=args.since)
    sys.stdout.write(json.dumps(t.to_dict(), indent=2) + "\n" if args.json else format_trend(t))
    if args.fail_on_regression and t.change_points and t.change_points[-1].kind == "regression":
        return 1
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    try:
        b = resolve_baseline(args.spec, db=args.db)
    except NoBaseline as e:  # exit 1, not 2: a workflow tells "none yet" from "the store is broken"
        print(f"edgefarm: {e}", file=sys.stderr)
        return 1
    print(f"baseline {b.description}: {len(b.records)} record(s)")
    for r in b.records:
        print(f"  {r.device.name:<16} {r.artifact.name:<32} run {r.run_id}  {r.started_at[:19]}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from harness.history.summary import summary_markdown

    run = Path(args.run_dir)
    gate = Path(args.gate) if args.gate else run / "gate.json"
    url = configured_url(args.db)
    if url is None:
        sys.stdout.write(summary_markdown(run, gate, None))
    else:
        with Store(url) as store:
            sys.stdout.write(summary_markdown(run, gate, store))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `history` and its verbs to the edgefarm command."""
    h = sub.add_parser("history", help="the results store: record runs, tag them, trends, baselines")
    verbs = h.add_subparsers(dest="history_command", metavar="VERB", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        p.add_argument("--db", help=f"store: a SQLite file path or postgresql://... (default ${ENV_VAR})")
        return p

    p = verb("add", "record run directories in the store (re-adding one is a no-op)")
    p.add_argument("run_dir", nargs="+", metavar="RUN_DIR")
    p.add_argument("--gate", metavar="GATE_JSON", help="the run's gate verdict (default RUN_DIR/gate.json if there)")
    p.set_defaults(func=cmd_add)

    p = verb("list", "recorded runs, newest first")
    p.add_argument("--branch")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_list)

    p = verb("tag", "name a recorded run, e.g. release:1.4 (usable as --baseline release:1.4)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("tag", metavar="TAG")
    p.set_defaults(func=cmd_tag)

    p = verb("trend", "one metric of one device x artifact across runs, with its change points")
    p.add_argument("--device", required=True)
    p.add_argument("--artifact", required=True, help="artifact file name (e.g. student.gguf)")
    p.add_argument("--metric", required=True, help="e.g. decode_tokens_per_s, latency_ms_p95")
    p.add_argument("--branch", help="only runs of this branch")
    p.add_argument("--since", metavar="RFC3339", help="only runs started at or after this time")
    p.add_argument("--json", action="store_true", help="print the series as JSON (what a report's chart draws)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when the newest change point is a regression")
    p.set_defaults(func=cmd_trend)

    p = verb("summary", "Markdown for a CI step summary: verdict, key figures, recent change points")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--gate", metavar="GATE_JSON", help="default RUN_DIR/gate.json")
    p.set_defaults(func=cmd_summary)

    p = verb("baseline", "show which records a --baseline value resolves to (exit 1: none matches)")
    p.add_argument("spec", metavar="SPEC", help="last-pass:BRANCH, a tag, a run id, or a run directory")
    p.set_defaults(func=cmd_baseline)
