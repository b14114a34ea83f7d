"""The default policy against real run-to-run noise, with the real agent on this machine (issue 12, figures only).

    .venv/bin/python benchmarks/gate_real_aa.py [--pairs 20] [--parts a,b,c] [--min-s 2] [--blocks 8] [--threads 1]
        [--interleave requests|launches] [--tiny]

(a) A/A back to back: one artifact run twice (`--processes 3` each), the second gated against the first
    (`edgefarm gate B --baseline A`); in half the pairs a bounded CPU hog (one busy process per CPU) runs during
    the second run.
(b) A/A interleaved: two files of the same architecture (weights from another seed: the same work, other bytes)
    measured with `edgefarm run --artifact X --baseline-artifact Y --interleave requests` (both loaded in each
    launch, requests alternating; `--interleave launches`: whole launches alternate) and gated as a pair; in half the pairs the
    hog runs for a bounded time inside the session (so it hits some blocks, not all).
(c) A real slowdown: a deeper student (--extra-layers more) against its base, each measured alone first (the ratio
    is printed), then interleaved as in (b): caught = the gate FAILs a relative latency rule.
Beside each: a plain 5% threshold on the pooled p95 (pytest-benchmark's way). Fails and inconclusives are
counted apart: "fail" = some rule's outcome is fail; "inconcl" = none fails but some rule is inconclusive.
No timed assertion: the script prints figures. Load on the machine is printed per pair.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
CLI = [sys.executable, "-m", "harness.cli"]


def hog(seconds: float, delay: float = 0.0) -> list[subprocess.Popen[bytes]]:
    """One busy process per CPU, bounded in time by itself (it ends even if this script dies)."""
    code = f"import time\ntime.sleep({delay})\nt = time.time() + {seconds}\nwhile time.time() < t: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 1)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=ENV, capture_output=True, text=True, timeout=timeout)


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines() if x.strip()]


def p95(rec: dict[str, Any]) -> float:
    v = (rec["metrics"].get("latency_ms_p95") or {}).get("value")
    return float(v) if v is not None else float("nan")  # not claimed (too few samples): no plain figure either


def gate(run: Path, *extra: str, latency_only: bool = False) -> tuple[int, str, str]:
    """(exit code, outcome word, the deciding rule's reason) of the default policy's relative rules on a run
    (latency_only: its latency rules alone - a deeper student's bigger file also fails the peak-RSS rule, which
    must not count as catching a slowdown)."""
    out = run / "gate.json"
    g = cli("gate", str(run), *extra, "--json", str(out))
    if not out.exists():
        return g.returncode, f"rc={g.returncode}", g.stderr.strip()[-200:]
    rules = [r for c in json.loads(out.read_text())["cells"] for r in c["rules"] if r["kind"] == "relative"
             and (not latency_only or str(r.get("metric", "")).startswith("latency_ms"))]
    for word in ("fail", "inconclusive"):
        hit = [r for r in rules if r["outcome"] == word]
        if hit:
            return g.returncode, "inconcl" if word == "inconclusive" else word, f"{hit[0]['rule']}: {hit[0]['reason'][:110]}"
    return g.returncode, "pass", ""


def run(out: Path, artifact: Path, args: argparse.Namespace, *extra: str) -> None:
    r = cli("run", "--artifact", str(artifact), "--out", str(out), "--min-s", str(args.min_s), "--threads",
            str(args.threads), "-q", *extra)
    if r.returncode not in (0, 4):
        raise SystemExit(f"edgefarm run failed ({r.returncode}): {r.stderr.strip()[-400:]}")


def row(part: str, i: int, hogged: bool, a: float, b: float, rc: int, word: str, why: str) -> bool:
    change = b / a - 1.0
    print(f"{part} {i:>3} {'yes' if hogged else 'no':>4} {a:9.3f} {b:9.3f} {change:+7.1%} "
          f"{'FAIL' if change > 0.05 else 'ok':>8} {word:>8} {rc:>3}  {os.getloadavg()[0]:4.1f}  {why}", flush=True)
    return change > 0.05


def p50(rec: dict[str, Any]) -> float:
    return float(rec["metrics"]["latency_ms_p50"]["value"])


def part_a(t: Path, art: Path, args: argparse.Namespace) -> tuple[dict[str, int], int, float | None]:
    """(outcomes, plain 5% flags, this device's run-to-run spread in % from the unhogged pairs: the sd of the
    log ratio of two runs' p50 over sqrt 2, what a profile's [run] run_spread_pct records)."""
    counts = {"fail": 0, "inconcl": 0, "pass": 0}
    plain = 0
    quiet: list[float] = []
    for i in range(args.pairs):
        hogged = i % 2 == 1
        run(t / f"a{i}", art, args, "--processes", "3")
        procs = hog(600) if hogged else []
        try:
            run(t / f"b{i}", art, args, "--processes", "3")
        finally:
            stop(procs)
        rc, word, why = gate(t / f"b{i}", "--baseline", str(t / f"a{i}"))
        counts[word if word in counts else "fail"] += 1
        ra, rb = records(t / f"a{i}")[0], records(t / f"b{i}")[0]
        plain += row("a", i, hogged, p95(ra), p95(rb), rc, word, why)
        if not hogged:
            quiet.append(math.log(p50(rb) / p50(ra)))
    spread = 100.0 * math.expm1(statistics.stdev(quiet) / math.sqrt(2.0)) if len(quiet) >= 2 else None
    return counts, plain, spread


def part_interleaved(part: str, t: Path, cand: Path, base: Path, args: argparse.Namespace,
                     hog_every_other: bool) -> tuple[dict[str, int], int]:
    counts = {"fail": 0, "inconcl": 0, "pass": 0}
    plain = 0
    for i in range(args.pairs):
        hogged = hog_every_other and i % 2 == 1
        procs = hog(args.hog_s, delay=args.hog_delay_s) if hogged else []
        try:
            run(t / f"i{part}{i}", cand, args, "--baseline-artifact", str(base), "--blocks", str(args.blocks),
                "--interleave", args.interleave)
        finally:
            stop(procs)
        rc, word, why = gate(t / f"i{part}{i}", latency_only=part == "c")
        counts[word if word in counts else "fail"] += 1
        recs = {r["pairing"]["role"]: r for r in records(t / f"i{part}{i}") if r.get("pairing")}
        plain += row(part, i, hogged, p95(recs["baseline"]), p95(recs["candidate"]), rc, word, why)
    return counts, plain


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--parts", default="a,b,c")
    ap.add_argument("--min-s", type=float, default=2.0, help="measured seconds per run (shared out over launches)")
    ap.add_argument("--blocks", type=int, default=8, help="interleaved blocks per artifact")
    ap.add_argument("--threads", type=int, default=1,
                    help="model threads (1: on a shared 2-core machine two threads starve each other's pool)")
    ap.add_argument("--layers", type=int, default=8, help="layers of the base student")
    ap.add_argument("--extra-layers", type=int, default=1,
                    help="(c): layers the slow student has more (1 of 8: ~10%% slower, measured alone first and "
                         "printed)")
    ap.add_argument("--tiny", action="store_true",
                    help="the tiny sample architecture (d_model 64, ~0.3 ms a request) instead of the default "
                         "sample's (d_model 256, ~2 ms): at 0.3 ms, per-launch speed modes spread launch medians "
                         "by ~26%% (CV), so a 10%% change needs far more blocks")
    ap.add_argument("--interleave", choices=("launches", "requests"), default="requests",
                    help="(b), (c): what alternates: requests within each launch (default: both models loaded, "
                         "A B, B A, ...) or whole launches")
    ap.add_argument("--hog-s", type=float, default=6.0, help="(b): how long the hog runs inside a session")
    ap.add_argument("--hog-delay-s", type=float, default=4.0, help="(b): when it starts after the session does")
    args = ap.parse_args()
    from harness.samples.onnx_model import DEFAULT, TINY, write_onnx

    parts = set(args.parts.split(","))
    summary: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        arch = TINY if args.tiny else DEFAULT
        base = write_onnx(t / "student.onnx", replace(arch, n_layers=args.layers), seed=0)
        twin = write_onnx(t / "student-twin.onnx", replace(arch, n_layers=args.layers), seed=1)
        deep = write_onnx(t / "student-deeper.onnx", replace(arch, n_layers=args.layers + args.extra_layers), seed=0)
        print(f"{'part':>4} {'#':>3} {'hog':>4} {'p95 A ms':>9} {'p95 B ms':>9} {'change':>7} {'plain 5%':>8} "
              f"{'gate':>8} {'rc':>3}  load  deciding rule", flush=True)
        if "a" in parts:
            c, plain, spread = part_a(t, base, args)
            summary.append(f"(a) A/A back to back, --processes 3, hog in half: gate fail {c['fail']}/{args.pairs} "
                           f"(goal <= 1), inconclusive {c['inconcl']}, pass {c['pass']}; "
                           f"plain 5% p95 threshold fails {plain}/{args.pairs}; run-to-run spread of p50 from the "
                           f"unhogged pairs: " + (f"{spread:.1f}% (a profile's [run] run_spread_pct)" if spread
                                                  is not None else "n/a"))
        if "b" in parts:
            c, plain = part_interleaved("b", t, twin, base, args, True)
            summary.append(f"(b) A/A interleaved ({args.blocks} blocks each, {args.interleave}), hog in half: gate fail "
                           f"{c['fail']}/{args.pairs} (goal 0), inconclusive {c['inconcl']}, pass {c['pass']}; "
                           f"plain 5% p95 threshold fails {plain}/{args.pairs}")
        if "c" in parts:
            run(t / "alone-base", base, args, "--processes", "3")
            run(t / "alone-deep", deep, args, "--processes", "3")
            rb, rd = records(t / "alone-base")[0], records(t / "alone-deep")[0]
            med = {k: rec["metrics"]["latency_ms_p50"]["value"] for k, rec in (("b", rb), ("d", rd))}
            print(f"(c) measured alone: base p50 {med['b']:.3f} ms, deeper p50 {med['d']:.3f} ms "
                  f"({med['d'] / med['b'] - 1:+.1%}); p95 {p95(rb):.3f} -> {p95(rd):.3f} ms "
                  f"({p95(rd) / p95(rb) - 1:+.1%})", flush=True)
            c, plain = part_interleaved("c", t, deep, base, args, False)
            summary.append(f"(c) deeper student interleaved ({args.blocks} blocks each, {args.interleave}): caught (gate "
                           f"fail) {c['fail']}/{args.pairs} (goal >= 19),"
                           f" inconclusive {c['inconcl']}, pass {c['pass']}; plain 5% p95 threshold flags "
                           f"{plain}/{args.pairs}")
    print()
    for s in summary:
        print(s)


if __name__ == "__main__":
    main()
