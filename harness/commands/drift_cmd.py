"""`edgefarm drift`: is the field still what we released? ok / drift / rollback per metric and device class.

Exit codes: 0 every finding ok; 1 a finding at or past --fail-on (drift by default; `insufficient` counts as
drift: a window with too little data is never a silent green); 2 usage or policy error; 3 the telemetry
source could not be read. A rollback verdict runs the policy's rollback.command (argv, no shell) first.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from harness.errors import UserError


def cmd_drift(args: argparse.Namespace) -> int:
    from harness.commands.telemetry_cmd import parse_when
    from harness.telemetry import report
    from harness.telemetry.contract import is_sha256, rfc3339
    from harness.telemetry.detect import SEVERITY
    from harness.telemetry.evaluate import Context, evaluate_window
    from harness.telemetry.policy import load_policy
    from harness.telemetry.promql import fetch_windows, selector
    from harness.telemetry.store import open_store, read_jsonl
    from harness.telemetry.window import Window, merge_models

    pol = load_policy(Path(args.policy))
    selector(args.model)  # validates --model before any I/O
    w_s = pol.window_s
    span = pol.window.history * pol.season_s + w_s
    now = time.time()
    windows: list[Window]
    if args.prometheus:
        at = now if args.at == "latest" else parse_when(args.at, now, "--at")
        end = math.floor(at / w_s) * w_s
        windows = fetch_windows(args.prometheus, args.model, end - span - w_s, end, w_s)
        source = f"prometheus {args.prometheus}"
        if not windows:
            raise UserError(f"Prometheus {args.prometheus} has no contract series for --model {args.model!r} "
                            f"in the {span / 86400:g} days before {rfc3339(end)}",
                            hint="check the model's sha256 or release name, and that its app exports contract v1")
    else:
        store = open_store(Path(args.store), args.db)
        windows = store.windows(args.model)
        if not windows:
            raise UserError(f"{store.describe()}: no telemetry windows for model {args.model!r} "
                            "(import with `edgefarm telemetry`, or give --prometheus URL)")
        end = parse_when(args.at, now, "--at") if args.at != "latest" else max(w.end for w in windows)
        end = math.floor(end / w_s) * w_s
        source = f"store {store.describe()}"
        windows = [w for w in windows if abs(w.end - w.start - w_s) < 1e-6]
        if not windows:
            raise UserError(f"{store.describe()}: no windows of {pol.window.length} for {args.model!r} "
                            f"(re-import with --window {pol.window.length}, the policy's window.length)")
    shas = sorted({w.model for w in windows if w.end == end}) or sorted({w.model for w in windows})
    merged = merge_models(windows, args.model)
    ctx = Context(pol)
    ref_path = args.reference or pol.behaviour.reference
    if ref_path:
        from harness.telemetry import contract as c
        from harness.telemetry.behaviour import load_reference, minilm_similarity, score

        reference = load_reference(Path(ref_path))
        # Sampled outputs are never in Prometheus: they come from the store (`edgefarm telemetry --jsonl`).
        samples = open_store(Path(args.store), args.db).samples(args.model)
        for f in args.samples or []:
            samples += [r for r in read_jsonl(Path(f)) if isinstance(r, c.SampleRecord)
                        and args.model in (r.model_sha256, r.model_version)]
        lo = end - span - w_s
        ctx.scored = score([s for s in samples if s.time >= lo], reference, minilm_similarity())
        ctx.behaviour_on = True
    lab_run = args.lab or pol.lab.run
    if lab_run:
        from harness.telemetry.lab import lab_figures

        metrics = [f"latency_p{p:g}" for p in pol.latency.percentiles] + [
            f"peak_memory_p{pol.memory.percentile:g}", "tokens_per_s"]
        sha = args.model if is_sha256(args.model) else (shas[-1] if len(shas) == 1 else None)
        if sha is None:
            raise UserError(f"--model {args.model!r} maps to {len(shas)} sha256s in this window; "
                            "give the sha256 to compare with lab figures")
        ctx.lab = lab_figures(Path(lab_run), sha, pol.lab.devices, metrics)
    verdict = evaluate_window(merged, end, ctx)
    d = report.to_json(verdict, model=args.model, policy=pol.path, source=source)
    out = Path(args.out)
    pj, pm = out / "drift.json", out / "drift.md"
    write_error: UserError | None = None
    try:
        report.write(d, out)
    except UserError as e:  # a full disk must not swallow a rollback: run it, then say why the report is missing
        write_error = e
    if verdict.verdict == "rollback" and pol.rollback.command:
        d["rollback"] = report.run_rollback(pol.rollback.command, {"model": args.model, "report_json": str(pj),
                                                                   "report_md": str(pm)}, pol.rollback.timeout_s)
        if write_error is None:
            report.write(d, out)
    if write_error is not None:
        raise write_error
    for f in d["findings"]:
        if f["verdict"] != "ok" or args.verbose:
            print(f"{f['verdict']:12s} {f['device_class']:14s} {f['metric']:22s} {f['against']:5s} {f['reason']}")
    for n in d["notes"]:
        print(f"note: {n}")
    print(f"drift verdict for {args.model} over {d['window']['start']}..{d['window']['end']}: "
          f"{d['verdict'].upper()} ({len(d['findings'])} findings; report {pj}, {pm})")
    rb = d.get("rollback")
    if rb:
        print(f"rollback command {rb['argv']!r} exited {rb.get('exit_code')}", file=sys.stderr)
    if not d["findings"]:
        print("edgefarm: no device class had field data in this window", file=sys.stderr)
        return 1
    fail_from = SEVERITY["insufficient"] if args.fail_on == "drift" else SEVERITY["rollback"]
    return 1 if SEVERITY[d["verdict"]] >= fail_from else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("drift", help="field drift: ok / drift / rollback per metric and device class",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="drift policy TOML (schema edgefarm.drift-policy/1)")
    p.add_argument("--model", required=True, help="model sha256 or release name")
    p.add_argument("--prometheus", metavar="URL", help="read the windows from this Prometheus server")
    p.add_argument("--store", default="telemetry", help="telemetry directory written by `edgefarm telemetry` "
                   "(when no results store is configured)")
    p.add_argument("--db", help="results store: a SQLite path or postgresql://... (default $EDGEFARM_DB)")
    p.add_argument("--at", default="latest", help="judge the last complete window before this time: 'now', "
                   "a duration back, RFC 3339, or 'latest' (store: its newest window; Prometheus: now)")
    p.add_argument("--samples", action="append", metavar="FILE", help="contract JSONL with sampled outputs")
    p.add_argument("--reference", help="reference outputs JSONL (overrides behaviour.reference)")
    p.add_argument("--lab", metavar="RUN_DIR", help="the released student's lab run (overrides lab.run)")
    p.add_argument("--out", default="drift-report", help="where drift.json and drift.md go")
    p.add_argument("--fail-on", choices=["drift", "rollback"], default="drift",
                   help="exit 1 from this verdict up (default drift; insufficient counts as drift)")
    p.add_argument("-v", "--verbose", action="store_true", help="print ok findings too")
    p.set_defaults(func=cmd_drift)
