"""`--adaptive decide` against a fixed-count run (called by benchmarks/adaptive_stopping.py --mode decide).

Simulated: iid lognormal(0, 0.3) latencies, true p95 known; the budget is set at a factor of it (far inside,
near inside, at, near past, far past). Per seed the fixed verdict is the 95% interval of the first --runs
samples against the budget; the sequential verdict is agents.sequential.replay on the same series with its
looks capped at --runs. Wrong: a pass when the truth is past the budget, a fail when it is within.

Real agent: the sample ONNX student (or --artifact), one fixed --runs measurement per round gives the p95 P and
the fixed verdict for each budget factor x P; then one `decide` run per budget (max_runs = --runs, so it can
never use more). Not a timed test: it prints figures; the machine is shared, so read the rows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agents import sequential as sq

FACTORS = (("far inside", 2.0), ("near inside", 1.1), ("at", 1.0), ("near past", 0.9), ("far past", 0.5))
SIGMA = 0.3
CONF, LOOKS, GROWTH = 0.95, 8, 2.0


def _verdict(xs: list[float], g: sq.Gated, conf: float) -> str:
    return str(sq.judge({"latency_ms": xs}, [g], conf)[0]["side"])


def simulated(runs: int, seeds: int) -> None:
    true_p95 = float(np.exp(1.6448536269514722 * SIGMA))
    print(f"simulated: lognormal(0, {SIGMA}) latencies, budget on p95 = factor x true p95; fixed = {runs} runs; "
          f"decide = {LOOKS} looks x{GROWTH:g} (capped at {runs}), {seeds} seeds per row")
    print(f"{'budget':<12} {'factor':>6} {'decide runs (median, p90)':>26} {'fixed verdicts':>22} "
          f"{'decide verdicts':>22} {'agree':>6} {'wrong fixed':>11} {'wrong decide':>12}")
    for name, f in FACTORS:
        g = sq.Gated("latency_ms_p95", "latency_ms", "quantile", 0.95, true_p95 * f, True)
        truth = "pass" if f >= 1.0 else "fail"
        used: list[int] = []
        fx: dict[str, int] = {"pass": 0, "fail": 0, "open": 0}
        dc: dict[str, int] = {"pass": 0, "fail": 0, "open": 0}
        agree = 0
        for seed in range(seeds):
            xs = np.exp(np.random.default_rng(seed).normal(0.0, SIGMA, runs)).tolist()
            fixed = _verdict(xs, g, CONF)
            reason, n, last = sq.replay({"latency_ms": xs}, [g], CONF, LOOKS, GROWTH)
            dec = str(last[0]["side"]) if reason == "decided" else "open"
            fx[fixed] += 1
            dc[dec] += 1
            used.append(n)
            agree += dec == fixed
        wrong = "fail" if truth == "pass" else "pass"
        print(f"{name:<12} {f:>6.2f} {statistics.median(used):>17.0f}, {np.percentile(used, 90):>6.0f} "
              f"{_counts(fx):>22} {_counts(dc):>22} {agree / seeds:>6.1%} {fx[wrong] / seeds:>11.2%} "
              f"{dc[wrong] / seeds:>12.2%}")
    print(f"stated bound on a wrong verdict per budget: {(1 - CONF) / 2:.3f} (fixed and decide alike)\n")


def _counts(c: dict[str, int]) -> str:
    return f"{c['pass']}P/{c['fail']}F/{c['open']}?"


def sample_spec(a: argparse.Namespace, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The artifact (--artifact, or the sample ONNX transformer written to tmp) and the agent spec both modes
    of benchmarks/adaptive_stopping.py start from."""
    if a.artifact:
        artifact = Path(a.artifact)
    else:
        from harness.samples import write_samples

        artifact = next(p for p in write_samples(tmp, size=a.size) if p.suffix == ".onnx")
    return artifact, {"artifact": str(artifact), "threads": a.threads, "warmup_runs": 20, "warmup_min_s": 0.0,
                      "min_s": 0.0, "timeout_s": a.max_s + 300, "seed": 0}


def real(a: argparse.Namespace, run_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory(prefix="edgefarm-decide-") as tmp:
        artifact, base = sample_spec(a, Path(tmp))
        print(f"real agent: {artifact.name}, threads {a.threads}; per round one fixed {a.runs}-run measurement, then "
              f"one decide run per budget (max_runs {a.runs})")
        print("replay: the rule on the fixed run's own samples (same data: the rule alone; the decide run is a new "
              "run, so it also meets the machine's run-to-run drift)")
        print(f"{'round':>5} {'budget':<12} {'limit ms':>9} {'fixed':>6} {'replay':>7} {'runs':>5} {'decide':>7} "
              f"{'runs':>5} {'s':>6}  stop")
        agree, total, used = 0, 0, {name: [] for name, _ in FACTORS}  # type: dict[str, list[int]]
        agree_replay = 0
        for r in range(1, a.rounds + 1):
            fixed = run_agent({**base, "min_runs": a.runs, "max_runs": a.runs, "max_s": a.max_s + 300})
            lat = fixed["samples"]["latency_ms"]
            p95 = float(fixed["metrics"]["latency_ms_p95"]["value"])
            for name, f in FACTORS:
                g = sq.Gated("latency_ms_p95", "latency_ms", "quantile", 0.95, round(p95 * f, 4), True)
                fv = _verdict(lat, g, CONF)
                why, rn, rlast = sq.replay({"latency_ms": lat}, [g], CONF, LOOKS, GROWTH)
                rv = str(rlast[0]["side"]) if why == "decided" else "open"
                agree_replay += rv == fv
                gated = [{"metric": g.metric, "series": g.series, "kind": g.kind, "p": g.p, "limit": g.limit}]
                res = run_agent({**base, "min_runs": 1, "max_runs": a.runs, "max_s": a.max_s,
                                 "adaptive": {"mode": "decide", "gated": gated, "looks": LOOKS, "growth": GROWTH}})
                st = res["stopping"]
                dv = st["gated"][0]["side"] if st["stop_reason"] == "decided" else "open"
                agree += dv == fv
                total += 1
                used[name].append(st["runs"])
                print(f"{r:>5} {name:<12} {g.limit:>9.3f} {fv:>6} {rv:>7} {rn:>5} {dv:>7} {st['runs']:>5} "
                      f"{st['seconds']:>6.2f}  {st['stop_reason']}")
        print("runs used by decide (median over rounds): " + ", ".join(
            f"{name} {statistics.median(v):.0f}" for name, v in used.items()) + f" (fixed: {a.runs})")
        print(f"replayed on the fixed run's samples: the fixed verdict in {agree_replay} of {total} "
              f"({agree_replay / total:.0%})")
        print(f"decide's verdict = the fixed {a.runs}-run verdict in {agree} of {total} ({agree / total:.0%}): a decide "
              "run is a new run, so near the budget it also meets the machine's drift between runs (the replay "
              "column is the rule alone)")


def main_decide(a: argparse.Namespace, run_agent: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    simulated(a.runs, a.seeds)
    real(a, run_agent)
    return 0
