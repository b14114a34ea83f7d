"""`edgefarm demo`: the main job on the embedded default. Sample students -> `local` -> gate -> reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import profiles as profiles_mod
from harness.artifacts import inspect
from harness.console import summary_table
from harness.progress import ProgressView
from harness.farm import new_run_id, run_farm
from harness.orchestrator import EXIT_DEVICE, EXIT_INTERNAL
from harness.runner import RunOverrides

REPO_POLICY = Path(__file__).resolve().parents[2] / "ci" / "policy.toml"


def cmd_demo(args: argparse.Namespace) -> int:
    from harness.gate import evaluate, load_policy
    from harness.gate.runjson import load_manifest
    from harness.reports import render
    from harness.reports.text import gate_text
    from harness.samples import write_samples

    policy_path = Path(args.policy) if args.policy else (REPO_POLICY if REPO_POLICY.is_file() else None)
    policy = load_policy(policy_path)  # read first: its budgets size the runs (harness/run_sizing.py), then it gates
    # them; the demo compares with no baseline, so its relative rules size nothing
    progress = ProgressView(quiet=args.quiet)
    samples_dir = Path(args.samples)
    progress.message(f"writing sample students ({args.size}) to {samples_dir} (generated offline, deterministic)")
    paths = write_samples(samples_dir, size=args.size)
    devices = profiles_mod.resolve([args.device], Path(args.profiles) if args.profiles else None)
    # Stop when the verdict is decided (agents/sequential.py), but not before the profile's own floor of runs and
    # seconds: on a quiet machine that is the usual run, on a busy one (serially dependent samples) the looks go on
    # until every budget is decided or max_s. No baseline is compared, so the relative rules size nothing.
    r = devices[0].run
    overrides = RunOverrides(policy=policy, relative=False, adaptive="decide", min_runs=r.min_runs, min_s=r.min_s)
    run_id = new_run_id()
    out = Path(args.out) if args.out else Path("runs") / f"demo-{run_id}"
    progress.message(f"run {run_id}: {len(paths)} artifacts on {args.device} -> {out}")
    result = run_farm(devices, [inspect(p) for p in paths], out, overrides, on_event=progress.event,
                      on_record=progress.record, on_message=progress.message, run_id=run_id)
    progress.close()
    print(summary_table(result.records))
    if result.interrupted or result.write_error:
        print(f"edgefarm: {result.write_error or f'interrupted by {result.interrupted}'}", file=sys.stderr)
        return result.exit_code
    report = evaluate(result.records, policy, profiles={p.name: p for p in devices}, run=str(out),
                      manifest=load_manifest(out), checklist=True)  # run.json is the checklist (h2)
    for fmt, name in (("json", "gate.json"), ("md", "report.md"), ("html", "report.html"), ("junit", "junit.xml")):
        (out / name).write_text(render(report, fmt), encoding="utf-8")  # type: ignore[arg-type]
    print()
    sys.stdout.write(gate_text(report))
    print(f"\nresults: {out / 'results.jsonl'}\nreport:  {out / 'report.html'} (self-contained; open it in a browser)")
    # A device that could not be used (3) or a bug (70) says more than the gate's verdict on what did run.
    return result.exit_code if result.exit_code in (EXIT_DEVICE, EXIT_INTERNAL) else report.exit_code


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="the main job on the embedded default: samples on `local`, gated, reported")
    p.add_argument("--samples", default="samples", help="where to write the sample students (default ./samples)")
    p.add_argument("--size", choices=["tiny", "default"], default="default")
    p.add_argument("--device", default="local")
    p.add_argument("--policy", help="gate policy (default ci/policy.toml)")
    p.add_argument("--profiles", help="device profile directory")
    p.add_argument("--out", help="run directory (default runs/demo-<run id>)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
