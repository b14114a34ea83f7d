"""`edgefarm golden validate|record|run`: golden behaviour suites (format: golden/README.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.errors import UserError


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.golden.suite import parse_suite

    suite, errors = parse_suite(Path(args.suite), require_reference=not args.allow_missing_references)
    for e in errors:
        print(f"edgefarm: error: {e}", file=sys.stderr)
    if errors:
        return 2
    print(f"{args.suite}: {len(suite.items)} items, valid")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from harness.golden.record import record_references

    rec = record_references(Path(args.suite), args.teacher, out=Path(args.out) if args.out else None,
                            overwrite=args.overwrite)
    print(rec)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness.golden.attach import golden_path
    from harness.golden.tiers import run_golden

    res = run_golden(Path(args.suite), args.artifact)
    print(res.markdown())
    outputs = []
    if args.json:
        outputs.append(Path(args.json))
    if args.run_dir:  # beside the run's results, where `edgefarm gate RUN_DIR` picks it up for the KPIs
        outputs.append(golden_path(Path(args.run_dir), Path(args.artifact).name))
    for out in outputs:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(res.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write {out}: {e.strerror}") from None
        print(f"golden result: {out}")
    return 0 if res.outcome == "pass" else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = sub.add_parser("golden", help="golden behaviour suites: validate, record references, run")
    gs = g.add_subparsers(dest="golden_command", metavar="ACTION", required=True)
    v = gs.add_parser("validate", help="check a suite file; every problem names the line and key")
    v.add_argument("suite")
    v.add_argument("--allow-missing-references", action="store_true")
    v.set_defaults(func=cmd_validate)
    r = gs.add_parser("record", help="write references from a teacher (an artifact or module:function)")
    r.add_argument("suite")
    r.add_argument("--teacher", required=True)
    r.add_argument("--out", help="write here instead of in place")
    r.add_argument("--overwrite", action="store_true", help="re-record items that already have a reference")
    r.set_defaults(func=cmd_record)
    u = gs.add_parser("run", help="run a suite against a student; exit 1 if it fails")
    u.add_argument("suite")
    u.add_argument("--artifact", required=True, help="student artifact, or module:function")
    u.add_argument("--json", help="write the full result here")
    u.add_argument("--run-dir", help="store the result in RUN_DIR/golden/ so the gate's KPIs use it")
    u.set_defaults(func=cmd_run)
