"""Adaptive stopping vs a fixed run count.

    .venv/bin/python benchmarks/adaptive_stopping.py [--mode decide|width] [--size tiny|default] [--artifact PATH]
                          [--rounds 3] [--runs 1000] [--percentile 95] [--width W] [--threads 1] [--seeds 300]

--mode decide (default; benchmarks/adaptive_decide.py): `--adaptive decide` against a fixed --runs measurement,
for models far inside, near and past their budgets: first simulated (lognormal samples, true p95 known, many
seeds), then the real agent on the sample ONNX student with budgets set relative to its p95 measured by a
fixed run; prints the runs each needed, the verdicts and how often they agree with the fixed-count verdict.

--mode width: the same artifact measured by the real agent with 1000 runs, then until its p95 interval is as
narrow as the 1000 runs made it (goal: that width with at most half the runs).

Each round runs the agent twice on the ONNX student from `harness.samples.write_samples` (or --artifact):
fixed (min_runs = --runs, min_s = 0), then adaptive with spec.adaptive = {percentiles: [P], rel_width: W},
where W is the relative width (hi - lo) / value of the p-th percentile's 95% interval that the fixed run
achieved in that round (or --width), so both runs aim at the same precision. Both warm up alike (20 runs).
The adaptive run is bounded by --max-s; when it stops there, stop_reason says so.
It also prints the width the fixed run's first half alone gave: a percentile's interval narrows about as
1/sqrt(n), so when the target is exactly the width 1000 runs gave, adaptive stopping cannot be expected to
need half of them (half the runs give ~1.4x the width); it saves runs where the target is set by what a
decision needs (--width), not by what a fixed count happened to give. Not a timed test: it prints figures. On a shared machine the latency distribution (and so the width 1000
runs give) changes from round to round; read the rows, not only the summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AGENT = [sys.executable, "-m", "agents"]  # the agent package of this checkout (PYTHONPATH below)
AGENT_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
sys.path.insert(0, str(ROOT))
from agents.stats import percentile_rel_width  # noqa: E402  (the width the agent's adaptive loop uses)


def run_agent(spec: dict[str, Any]) -> dict[str, Any]:
    """One `python -m agents run` (the real agent, its model in a child process); the result event."""
    p = subprocess.run([*AGENT, "run", json.dumps(spec)], capture_output=True, text=True, env=AGENT_ENV,
                       timeout=float(spec["timeout_s"]) + 60)
    for line in reversed(p.stdout.splitlines()):
        ev = json.loads(line)
        if ev.get("event") == "result":
            if ev["status"] != "ok":
                raise SystemExit(f"agent run failed: {ev['status']}: {ev['message']}")
            return dict(ev)
    raise SystemExit(f"agent gave no result (exit {p.returncode}): {p.stderr[-800:]}")


def summary(res: dict[str, Any], pct: int) -> dict[str, Any]:
    m = res["metrics"][f"latency_ms_p{pct}"]
    if not m["ci"] or not m["value"]:
        raise SystemExit(f"no p{pct} interval from {len(res['samples']['latency_ms'])} runs: {m['note']}")
    lat = res["samples"]["latency_ms"]
    # from the samples, with the function the agent's loop uses (the metric's interval is rounded to 0.1 us)
    width = percentile_rel_width(lat, pct, 0.95)
    return {"runs": len(lat), "value": m["value"], "ci": (float(m["ci"][0]), float(m["ci"][1])), "width": width,
            "half_width": percentile_rel_width(lat[:len(lat) // 2], pct, 0.95),
            "seconds": res["stopping"]["seconds"], "stop_reason": res["stopping"]["stop_reason"],
            "p50": res["metrics"]["latency_ms_p50"]["value"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "default"], default="default", help="sample size (write_samples)")
    ap.add_argument("--artifact", help="an ONNX/TFLite file instead of the sample")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=1000, help="the fixed run count")
    ap.add_argument("--percentile", type=int, default=95)
    ap.add_argument("--width", type=float, help="adaptive target width (default: what the fixed run achieved)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-s", type=float, default=120.0, help="bound of the adaptive run")
    ap.add_argument("--mode", choices=["decide", "width"], default="decide")
    ap.add_argument("--seeds", type=int, default=300, help="simulated series per scenario (--mode decide)")
    a = ap.parse_args()
    if a.mode == "decide":
        from adaptive_decide import main_decide

        return main_decide(a, run_agent)
    pct = a.percentile
    from adaptive_decide import sample_spec

    with tempfile.TemporaryDirectory(prefix="edgefarm-adaptive-") as tmp:
        artifact, base = sample_spec(a, Path(tmp))
        print(f"artifact: {artifact.name} ({artifact.stat().st_size / 2**20:.1f} MiB), threads {a.threads}, "
              f"p{pct} with its 95% order-statistic interval; width = (hi - lo) / p{pct}")
        print(f"{'round':>5} {'mode':<9} {'runs':>6} {'seconds':>8} {'p50 ms':>8} {f'p{pct} ms':>8} "
              f"{'interval ms':>19} {'width':>7} {'target':>7}  stop_reason")
        rows: list[tuple[dict[str, Any], dict[str, Any], float]] = []
        for r in range(1, a.rounds + 1):
            fixed = summary(run_agent({**base, "min_runs": a.runs, "max_s": a.max_s + 300}), pct)
            target = a.width if a.width is not None else fixed["width"]
            adaptive = summary(run_agent({**base, "min_runs": 1, "max_s": a.max_s,
                                          "adaptive": {"percentiles": [pct], "rel_width": target}}), pct)
            for mode, s in (("fixed", fixed), ("adaptive", adaptive)):
                print(f"{r:>5} {mode:<9} {s['runs']:>6} {s['seconds']:>8.2f} {s['p50']:>8.3f} {s['value']:>8.3f} "
                      f"[{s['ci'][0]:>8.3f}, {s['ci'][1]:>8.3f}] {s['width']:>7.2%} {target:>7.2%}  "
                      f"{s['stop_reason']}")
            rows.append((fixed, adaptive, target))
        ratios = [ad["runs"] / fx["runs"] for fx, ad, _ in rows]
        hit_target = sum(1 for _, ad, t in rows if ad["width"] <= t)
        same = [ad["width"] <= fx["width"] for fx, ad, _ in rows]
        goal = sum(1 for ok, q in zip(same, ratios) if ok and q <= 0.5)
        print(f"\nadaptive runs / fixed runs: median {statistics.median(ratios):.2f} "
              f"(rounds: {', '.join(f'{q:.2f}' for q in ratios)})")
        print(f"median p{pct} width: fixed {statistics.median(fx['width'] for fx, _, _ in rows):.2%}, "
              f"adaptive {statistics.median(ad['width'] for _, ad, _ in rows):.2%}; the fixed runs' first half "
              f"alone: {statistics.median(fx['half_width'] for fx, _, _ in rows):.2%}")
        print(f"adaptive met its target width in {hit_target} of {len(rows)} rounds; reached the fixed run's width "
              f"in {sum(same)}, with at most half the runs in {goal} of {len(rows)} (goal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
