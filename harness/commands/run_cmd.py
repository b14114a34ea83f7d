"""`edgefarm run`, `edgefarm devices`, `edgefarm samples`."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import sys
from pathlib import Path
from typing import Any, Literal

from agents.spec import BACKENDS
from harness import profiles as profiles_mod
from harness.artifacts import inspect
from harness.config import cli_number, cli_out_dir
from harness.progress import ProgressView
from harness.errors import UserError
from harness.gate.policy import load_policy
from harness.farm import new_run_id, run_farm
from harness.history import maybe_ingest
from harness.reports.keyfigures import OUT_FORMATS, render_records
from harness.orchestrator import EXIT_NOT_OK, check_workloads
from harness.interleave import PairPlan
from harness.records import ArtifactInfo
from harness.runner import RunOverrides


def _profiles_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.profiles) if getattr(args, "profiles", None) else None


def parse_adaptive(text: str) -> tuple[list[float], float] | Literal["decide"]:
    """`decide` (stop when every budget is decided), or `p95:0.05` / `p90,p99:5%` -> ([percentiles], relative
    interval width)."""
    if text.strip().lower() == "decide":
        return "decide"
    pcts, sep, width = text.partition(":")
    try:
        ps = [float(p.strip().lower().removeprefix("p")) for p in pcts.split(",")]
        w = float(width[:-1]) / 100.0 if width.endswith("%") else float(width)
    except ValueError:
        ps, w = [], 0.0
    if not sep or not ps or not all(0 < p < 100 for p in ps) or w <= 0:
        raise UserError(f"--adaptive {text!r}: expected `decide` or PERCENTILES:WIDTH such as p95:0.05 or p90,p99:5%",
                        hint="WIDTH is the confidence interval's width relative to the percentile's value")
    return ps, w


def check_run_control(args: argparse.Namespace) -> None:
    """Run-control flags must be finite and positive (NaN or inf would lose every cell): one line naming the flag."""
    for flag, value, zero_ok in (("--min-runs", args.min_runs, False), ("--min-s", args.min_s, True),
                                 ("--max-s", args.max_s, False), ("--warmup-runs", args.warmup_runs, True),
                                 ("--threads", args.threads, False), ("--timeout", args.timeout, False)):
        if value is None:
            continue
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise UserError(f"{flag} {value}: expected a finite number {'>= 0' if zero_ok else '> 0'}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def parse_spec_json(text: str | None) -> dict[str, Any]:
    """--spec-json: a JSON object of extra agent spec keys (the agent validates the keys themselves)."""
    if not text:
        return {}
    try:
        extra = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise UserError(f"--spec-json: not valid JSON ({e})") from None
    if not isinstance(extra, dict):
        raise UserError(f"--spec-json: expected a JSON object such as '{{\"dynamic_dims\": {{\"seq\": 64}}}}', "
                        f"got {type(extra).__name__}")
    return extra


def pair_plan(args: argparse.Namespace, artifacts: list[ArtifactInfo]) -> PairPlan | None:
    """--baseline-artifact: one candidate against one baseline, two different files; else None."""
    if args.baseline_artifact is None:
        if args.blocks is not None or args.interleave is not None:
            raise UserError(f"{'--blocks' if args.blocks is not None else '--interleave'} needs --baseline-artifact "
                            "(an interleaved A/B session)")
        return None
    if len(artifacts) != 1:
        raise UserError(f"--baseline-artifact {args.baseline_artifact}: give exactly one --artifact to compare "
                        f"with it (got {len(artifacts)})")
    if args.processes is not None:
        raise UserError("--processes with --baseline-artifact: each interleaved block is already its own launch; "
                        "set the blocks with --blocks N")
    if args.resume:
        raise UserError("--resume with --baseline-artifact: an interleaved session cannot be resumed; run it again")
    base = inspect(Path(args.baseline_artifact))
    if base.sha256 == artifacts[0].sha256:
        raise UserError(f"--baseline-artifact {args.baseline_artifact}: the same bytes as --artifact "
                        f"{artifacts[0].path} (sha256 {base.sha256[:12]}); compare two different files")
    return PairPlan(artifacts[0], base, args.blocks, args.interleave)


def cmd_run(args: argparse.Namespace) -> int:
    if not args.artifact:
        raise UserError("no artifact given", hint="pass --artifact PATH (repeatable); `edgefarm samples DIR` makes some")
    extra = parse_spec_json(args.spec_json)
    if args.backend:
        extra["backend"] = args.backend
    check_run_control(args)
    devices = profiles_mod.resolve(args.device or ["local"], _profiles_dir(args))
    artifacts = [inspect(Path(a)) for a in args.artifact]
    pair = pair_plan(args, artifacts)
    if args.adaptive and args.adaptive.strip().lower() == "decide" and (pair is not None or (args.processes or 1) > 1):
        raise UserError("--adaptive decide stops one launch on its budgets; it cannot be combined with "
                        f"{'--baseline-artifact' if pair is not None else '--processes'} (launches combined afterwards)")
    run_id = new_run_id()
    if args.resume and not args.out:
        raise UserError("--resume needs --out RUN_DIR (the run to finish)")
    out = Path(args.out) if args.out else Path("runs") / run_id
    overrides = RunOverrides(warmup_runs=args.warmup_runs, min_runs=args.min_runs, min_s=args.min_s,
                             max_s=args.max_s, threads=args.threads, timeout_s=args.timeout, seed=args.seed,
                             adaptive=parse_adaptive(args.adaptive) if args.adaptive else None, extra=extra,
                             policy=load_policy(Path(args.policy)) if args.policy else None)
    check_workloads(devices, artifacts, overrides)
    progress = ProgressView(quiet=args.quiet)
    progress.message(f"run {run_id}: {len(artifacts)} artifact(s) on {', '.join(d.name for d in devices)} -> {out}")
    if pair is not None:
        progress.message(f"interleaved A/B: {pair.candidate.name} against {pair.baseline.name}, "
                         f"{pair.blocks or 'the profile' + chr(39) + 's'} blocks each in ABBA order after a shared warmup"
                         + (", requests alternating within each launch" if pair.unit == "requests" else ""))
    result = run_farm(devices, artifacts, out, overrides, on_event=progress.event, on_record=progress.record,
                      on_message=progress.message, run_id=run_id, resume=args.resume, processes=args.processes,
                      pair=pair)
    progress.close()
    sys.stdout.write(render_records(result.records, args.output_format))
    info = sys.stdout if args.output_format == "table" else sys.stderr  # -o json: stdout is the document alone
    sent = sum(result.bytes_sent.values())
    print(f"\nbytes transferred to devices: {sent} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(result.bytes_sent.items())) or 'none'})", file=info)
    print(f"results: {out / 'results.jsonl'}", file=info)
    if result.write_error:
        print(f"edgefarm: error: {result.write_error}", file=sys.stderr)
    elif result.interrupted:
        print(f"edgefarm: interrupted by {result.interrupted}; finished results are in {out}", file=sys.stderr)
    elif result.internal_errors:
        print(f"edgefarm: internal error (a bug): {result.internal_errors[0]}", file=sys.stderr)
    elif result.unusable:
        name, why = next(iter(result.unusable.items()))
        print(f"edgefarm: error: device '{name}' could not be used: {why}", file=sys.stderr)
    if not result.write_error:
        maybe_ingest(out)  # into the results store when EDGEFARM_DB is set; never changes the exit code
    if result.exit_code == EXIT_NOT_OK and args.allow_failures:
        return 0
    return result.exit_code


def cmd_devices(args: argparse.Namespace) -> int:
    from harness.devicecheck import check_device

    profs = profiles_mod.load_all(_profiles_dir(args))
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        checks = dict(zip(profs, pool.map(check_device, profs.values())))
    width = max((len(n) for n in profs), default=6)
    for name, prof in profs.items():
        c = checks[name]
        print(f"{name:<{width}}  {prof.device_class:<7} {prof.transport.kind:<5} {c.state:<11}  {c.summary}")
    return 3 if any(c.host_key_mismatch is not None for c in checks.values()) else 0


def cmd_samples(args: argparse.Namespace) -> int:
    from harness.samples import write_samples

    paths = write_samples(Path(args.dir), size=args.size)
    for p in paths:
        print(f"{p}  {p.stat().st_size / 2**20:.1f} MiB")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="benchmark artifacts on devices; stream results to a run directory")
    p.add_argument("--device", action="append", help="profile name (repeatable) or 'all'; default: local")
    p.add_argument("--artifact", action="append", help="model file (ONNX, TFLite, GGUF); repeatable")
    p.add_argument("--out", type=cli_out_dir, help="run directory (default runs/<run id>)")
    p.add_argument("--profiles", help="device profile directory (default $EDGEFARM_PROFILES or ./device_profiles)")
    p.add_argument("--min-runs", type=cli_number(int, ge=1, le=10_000_000), help="measured runs at least (default from the profile)")
    p.add_argument("--min-s", type=cli_number(float, ge=0, le=86400), help="measured seconds at least")
    p.add_argument("--max-s", type=cli_number(float, gt=0, le=86400), help="measured seconds at most")
    p.add_argument("--warmup-runs", type=cli_number(int, ge=0, le=10_000_000))
    p.add_argument("--threads", type=cli_number(int, ge=1, le=4096))
    p.add_argument("--backend", choices=BACKENDS, help="accelerator: onnxruntime EP, LiteRT delegate or llama.cpp -ngl "
                                                       "(default: the profile's [run] backend, else cpu)")
    p.add_argument("--timeout", type=cli_number(float, gt=0, le=86400), help="per-artifact agent timeout in seconds")
    p.add_argument("--seed", type=cli_number(int, ge=0, le=2**63 - 1), default=0)
    p.add_argument("--adaptive", metavar="decide|PCTS:WIDTH",
                   help="decide: stop as soon as every budget (policy + profile) is decided, at a stated error "
                        "rate; PCTS:WIDTH: measure until each percentile's confidence interval is narrower than "
                        "WIDTH x its value, e.g. p95:0.05 (at least MLPerf's run count for it; at most --max-s)")
    p.add_argument("--policy", help="gate policy TOML: each run measures enough for what it gates "
                                    "(default: no sizing; --adaptive decide uses the default policy)")
    p.add_argument("--processes", type=cli_number(int, ge=1, le=64),
                   help="measure each cell in N independent agent launches, the measured runs shared out (asv's "
                        "processes): run-level evidence for relative rules (default: the profile's [run] processes, 1)")
    p.add_argument("--baseline-artifact", metavar="PATH",
                   help="interleaved A/B: measure --artifact and this baseline in one device session, alternating "
                        "blocks ABBA after a shared warmup; the gate judges the pair without --baseline")
    p.add_argument("--blocks", type=cli_number(int, ge=2, le=64),
                   help="with --baseline-artifact: blocks (agent launches) per artifact "
                        "(default: the profile's [run] interleave_blocks, 8)")
    p.add_argument("--interleave", choices=("launches", "requests"),
                   help="with --baseline-artifact: what alternates. launches: each block is one artifact's own "
                        "launch; requests: each launch loads both and alternates their requests (A B, B A, ...), "
                        "so drift within seconds hits both alike - far tighter pairs where both models fit in "
                        "memory at once (memory figures then come from each artifact's own warmup launch). "
                        "Default: the profile's [run] interleave_unit, launches")
    p.add_argument("--spec-json", help="extra agent spec keys as JSON (advanced)")
    p.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even when a run is not ok (a device that could not be used still exits 3)")
    p.add_argument("--resume", action="store_true",
                   help="finish the run in --out: keep its ok cells, re-run the rest, append to its results")
    p.add_argument("-o", "--output-format", choices=OUT_FORMATS, default="table",
                   help="key figures on stdout as a table (default), md, csv, json or jsonl (like llama-bench -o)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_run)

    d = sub.add_parser("devices", help="list device profiles and whether each is reachable")
    d.add_argument("--profiles")
    d.set_defaults(func=cmd_devices)

    s = sub.add_parser("samples", help="write small real student artifacts (ONNX, TFLite, GGUF), no download")
    s.add_argument("dir")
    s.add_argument("--size", choices=["tiny", "default"], default="default")
    s.set_defaults(func=cmd_samples)
