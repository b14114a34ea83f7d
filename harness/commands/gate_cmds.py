"""`edgefarm gate`, `edgefarm report`, `edgefarm compare`, `edgefarm merge`.

gate exits 0 pass, 1 fail (see harness/gate/engine.py for what inconclusive and errors do), 2 usage or
config error (a UserError, printed as one line by harness/cli.py), 3 a planned cell is missing or its device
was lost (codes: harness/errors.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from harness import profiles as profiles_mod
from harness.config import cli_number
from harness.errors import UserError
from harness.gate import GateReport, evaluate, load_policy
from harness.gate.compare import compare, compare_exit
from harness.golden.attach import GOLDEN_DIR, attach_golden
from harness.history.baseline import resolve_baseline
from harness.profiles import Profile
from harness.gate.runjson import RUN_FILE, RUN_SCHEMA, load_manifest
from harness.records import RESULTS_FILE, JsonlWriter, Record, iter_records, load_run, read_results, results_path
from harness.reports import PRINTERS, render
from harness.reports.keyfigures import render_records
from harness.reports.text import compare_text, gate_text


def _profiles(args: argparse.Namespace) -> dict[str, Profile]:
    """Device profiles for their budgets: --profiles, else the default directory when there is one."""
    if args.profiles:
        return profiles_mod.load_all(Path(args.profiles))
    d = profiles_mod.default_profiles_dir()
    return profiles_mod.load_all(d) if d.is_dir() else {}


def _gate(args: argparse.Namespace) -> GateReport:
    run = Path(args.run_dir)
    policy = load_policy(Path(args.policy) if args.policy else None)
    baseline = resolve_baseline(args.baseline).records if args.baseline else None
    records, bad = read_results(results_path(run))  # bad lines become error cells, not a traceback or a gap
    attach_golden(records, run)  # golden pass rate and stability feed the KPIs
    return evaluate(records, policy, baseline=baseline, profiles=_profiles(args), run=str(run),
                    baseline_run=args.baseline, manifest=load_manifest(run), bad_lines=bad, checklist=True)


def _warn_loud(report: GateReport) -> None:
    """Notes in capitals (an empty policy, a baseline that matches nothing) also go to the terminal's stderr."""
    for n in report.notes:
        head = n.split(":", 1)[0]
        if head.isupper():
            print(f"edgefarm: warning: {n}", file=sys.stderr)


def _write(path: str, text: str) -> None:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {p}: {e.strerror}") from None


def cmd_gate(args: argparse.Namespace) -> int:
    report = _gate(args)
    _warn_loud(report)
    for fmt, path in (("json", args.json), ("junit", args.junit), ("md", args.md), ("html", args.html)):
        if path:
            _write(path, render(report, fmt))  # type: ignore[arg-type]
    sys.stdout.write(gate_text(report))
    return report.exit_code


def cmd_report(args: argparse.Namespace) -> int:
    report = _gate(args)
    _warn_loud(report)
    text = render(report, args.format)
    if args.output:
        _write(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    factor = args.factor if args.factor is not None else 1.0 + args.threshold / 100.0
    if factor <= 1.0:
        raise UserError(f"--threshold must be greater than 0 (got {100 * (factor - 1):g}%)")
    ra, rb = load_run(Path(args.a)), load_run(Path(args.b))
    rows = compare(ra, rb, factor=factor)
    shown = [r for r in rows if r.mark] if args.only_changed else rows
    sys.stdout.write(compare_text(shown, args.a, args.b, render_records(rb, "table", ra), 100 * (factor - 1)))
    return compare_exit(rows)


def _shard_files(shard: Path) -> list[Path]:
    if shard.is_file():
        return [shard]
    if not shard.is_dir():
        raise UserError(f"{shard}: no such shard directory")
    direct = shard / RESULTS_FILE
    found = [direct] if direct.is_file() else sorted(shard.rglob(RESULTS_FILE))
    if not found:
        raise UserError(f"{shard}: no {RESULTS_FILE} in it or below it")
    return found


def merge_runs(out_dir: Path, shards: list[Path]) -> tuple[int, int, int]:
    """Merge shard result files into out_dir/results.jsonl, one record per (run_id, device, artifact).

    A record seen twice (a retried CI job, a shard downloaded twice) is kept once: identical copies silently,
    differing ones by the later finished_at. Returns (records written, identical duplicates, conflicts).
    """
    out = out_dir / RESULTS_FILE
    if out.exists():
        raise UserError(f"{out} already exists", hint="merge into a new directory")
    files = [f for s in shards for f in _shard_files(s)]
    if any(f.resolve() == out.resolve() for f in files):
        raise UserError(f"{out} is one of the shards")
    kept: dict[tuple[str, str, str], Record] = {}
    same = conflicts = 0
    for f in files:
        for rec in iter_records(f):  # a bad line anywhere is a UserError naming file, line and key
            key = (rec.run_id, *rec.cell)
            prev = kept.get(key)
            if prev is None:
                kept[key] = rec
            elif json.dumps(prev.to_dict(), sort_keys=True) == json.dumps(rec.to_dict(), sort_keys=True):
                same += 1
            else:
                conflicts += 1
                if rec.finished_at > prev.finished_at:
                    kept[key] = rec
    with JsonlWriter(out) as w:
        for key in sorted(kept):
            w.write(kept[key])
    _merge_golden(out_dir, files)
    _merge_manifests(out_dir, files)
    return len(kept), same, conflicts


def _merge_manifests(out_dir: Path, result_files: list[Path]) -> None:
    """The shards' run.json planned cells, united, so the merged gate still sees a cell no shard recorded."""
    raw: list[dict[str, Any]] = []
    for f in result_files:
        if load_manifest(f.parent) is None:  # also validates it: a broken one is a named error
            print(f"edgefarm: warning: {f.parent} has no {RUN_FILE}: the merged run has no checklist; "
                  "the gate cannot see cells that shard never recorded", file=sys.stderr)
            return
        raw.append(json.loads((f.parent / RUN_FILE).read_text(encoding="utf-8")))
    if not all(d.get("schema") == RUN_SCHEMA and isinstance(d.get("planned"), list) for d in raw):
        print(f"edgefarm: warning: a shard's {RUN_FILE} has no planned cells (older edgefarm): the merged run "
              "has no checklist", file=sys.stderr)
        return
    arts: dict[str, Any] = {}
    planned: dict[tuple[str, str], dict[str, str]] = {}
    for d in raw:
        arts.update({a["sha256"]: a for a in d.get("artifacts", []) if isinstance(a, dict) and "sha256" in a})
        planned.update({(c["device"], c["sha256"]): c for c in d["planned"]})
    ends = [d.get("finished_at") for d in raw]
    merged = {"schema": RUN_SCHEMA, "run_id": "+".join(sorted({str(d.get("run_id")) for d in raw})),
              "started_at": min(str(d.get("started_at")) for d in raw),
              "finished_at": None if None in ends else max(str(e) for e in ends),
              "harness_version": raw[0].get("harness_version"),
              "devices": sorted({dev for d in raw for dev in d.get("devices", [])}),
              "artifacts": [arts[k] for k in sorted(arts)], "planned": [planned[k] for k in sorted(planned)],
              "interrupted": next((d["interrupted"] for d in raw if d.get("interrupted")), None),
              "exit_code": None, "merged_from": [str(f.parent) for f in result_files]}
    (out_dir / RUN_FILE).write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")


def _merge_golden(out_dir: Path, result_files: list[Path]) -> None:
    """Carry each shard's golden/<artifact>.json along, so the merged gate still sees the golden KPIs."""
    for f in result_files:
        for g in sorted((f.parent / GOLDEN_DIR).glob("*.json")):
            dst = out_dir / GOLDEN_DIR / g.name
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(g, dst)


def cmd_merge(args: argparse.Namespace) -> int:
    n, same, conflicts = merge_runs(Path(args.out_dir), [Path(s) for s in args.shards])
    msg = f"merged {n} records into {Path(args.out_dir) / RESULTS_FILE}"
    if same or conflicts:
        msg += f" ({same} identical duplicates dropped, {conflicts} differing duplicates: kept the later)"
    print(msg)
    return 0


def _gate_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (or a results.jsonl)")
    p.add_argument("--policy", help="gate policy TOML (default: harness/gate/default_policy.toml)")
    p.add_argument("--baseline", metavar="BASELINE", help="baseline for the relative rules: a run directory, or from "
                                                          "the store: last-pass:BRANCH, a tag, a run id")
    p.add_argument("--profiles", help="device profile directory, for their [budgets] "
                                      "(default $EDGEFARM_PROFILES or ./device_profiles)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add gate, report, compare and merge to the edgefarm command."""
    p = sub.add_parser("gate", help="judge a run against a policy, device budgets and a baseline; exit 0/1/2")
    _gate_inputs(p)
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    p.add_argument("--html", metavar="FILE", help="also write the self-contained HTML report here")
    p.add_argument("--md", metavar="FILE", help="also write Markdown (GitHub step summary / PR comment) here")
    p.add_argument("--json", metavar="FILE", help="also write the JSON verdict (edgefarm.gate/1) here")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("report", help="render a run's gate report as html, md, junit or json")
    _gate_inputs(p)
    p.add_argument("--format", required=True, choices=sorted(PRINTERS))
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="per-metric changes between two runs, with significance (asv style)")
    p.add_argument("a", metavar="A", help="the earlier run directory")
    p.add_argument("b", metavar="B", help="the later run directory")
    p.add_argument("--threshold", type=cli_number(float, gt=0, le=1e6), default=5.0, metavar="PCT",
                   help="worsening in %% that counts as a regression when significant (default 5); exit 1 "
                        "when a tracked metric regressed past it")
    p.add_argument("--factor", type=cli_number(float, gt=1.0, le=1e6), help="the same as a ratio (1.05 = --threshold 5)")
    p.add_argument("--only-changed", action="store_true", help="list only rows marked + - ~ x")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("merge", help="merge result shards from several hosts or CI jobs into one run directory")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("shards", metavar="SHARD_DIR", nargs="+", help="shard run directories (searched for results.jsonl)")
    p.set_defaults(func=cmd_merge)
