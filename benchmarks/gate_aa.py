"""A/A check of the default gate policy, against a plain 5% threshold on the mean (pytest-benchmark's
`--benchmark-compare-fail mean:5%`), then the detection rate of real slowdowns.

    .venv/bin/python benchmarks/gate_aa.py [--replicates 100] [--seed 0]

Each replicate: one artifact on one device run twice (300-2000 warm latencies per run, lognormal with a
per-replicate spread of 3-15%, plus outliers 1.5-4x slower), each run measured in --launches agent launches
whose levels differ by --spread (run-to-run noise), the second run gated against the first.
"False fail" = the gate's exit code is non-zero although nothing changed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.gate import evaluate, load_policy  # noqa: E402
from synthetic import in_launches, latency_samples, make_record  # noqa: E402  (tests/synthetic.py: test tooling)


@dataclass(frozen=True)
class Noise:
    name: str
    outlier_rate: float
    burst: float  # mean length of an outlier burst, in iterations


SCENARIOS = [
    Noise("iid outliers 1%", 0.01, 1.0),
    Noise("iid outliers 3%", 0.03, 1.0),
    Noise("bursty outliers 1% (bursts ~5)", 0.01, 5.0),
    Noise("bursty outliers 2% (bursts ~10)", 0.02, 10.0),
]


def trial(rng: np.random.Generator, noise: Noise, slowdown: float) -> tuple[list[float], list[float]]:
    n = int(rng.integers(300, 2001))
    sigma = float(rng.uniform(0.03, 0.15))
    median = float(rng.uniform(5.0, 200.0))
    a = latency_samples(rng, n, median, sigma, noise.outlier_rate, noise.burst)
    b = latency_samples(rng, n, median * slowdown, sigma, noise.outlier_rate, noise.burst)
    return a, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--launches", type=int, default=3, help="agent launches per run (--processes)")
    ap.add_argument("--spread", type=float, default=0.02, help="run-to-run spread: sd of a launch's log level")
    args = ap.parse_args()
    policy = load_policy()
    rules = ", ".join(f"{r.metric} +{r.max_worse_pct:g}%" for r in policy.relative)
    print(f"default policy ({policy.source}): {rules}")
    print(f"alpha {policy.stats.alpha}, inconclusive -> {policy.inconclusive}, "
          f"not significant -> {policy.not_significant}; {args.replicates} replicates per row\n")
    head = (f"{'noise':34} {'change':>6} | {'gate exit!=0':>11} {'fail':>5} {'inc.blk':>7} {'inc.nb':>6} | "
            f"{'mean:5%':>7}")
    print(head)
    print("-" * len(head))
    t0 = time.perf_counter()
    for noise in SCENARIOS:
        for slowdown in (1.0, 1.08, 1.15):
            rng = np.random.default_rng([args.seed, int(slowdown * 100), SCENARIOS.index(noise)])
            nonzero = fails = inc_block = inc_nb = pb = 0
            for _ in range(args.replicates):
                a, b = trial(rng, noise, slowdown)
                # each run in --launches launches with their own level (run-to-run noise, issue 12)
                rep = evaluate([in_launches(make_record(run_id="b", samples=b), args.launches, rng, args.spread)],
                               policy, baseline=[in_launches(make_record(run_id="a", samples=a), args.launches, rng,
                                                             args.spread)])
                rules_out = rep.cells[0].rules
                nonzero += rep.exit_code != 0
                fails += any(r.outcome == "fail" for r in rules_out)
                inc_block += any(r.outcome == "inconclusive" and r.blocking for r in rules_out)
                inc_nb += any(r.outcome == "inconclusive" and not r.blocking for r in rules_out)
                pb += float(np.mean(b)) > 1.05 * float(np.mean(a))
            k = args.replicates
            label = "A/A" if slowdown == 1.0 else f"+{(slowdown - 1) * 100:.0f}%"
            print(f"{noise.name:34} {label:>6} | {100 * nonzero / k:10.0f}% {fails:5d} {inc_block:7d} {inc_nb:6d} | "
                  f"{100 * pb / k:6.0f}%")
        print()
    print("A/A rows: 'gate exit!=0' is the false-fail rate (goal <= 1%); 'mean:5%' is pytest-benchmark's plain")
    print("threshold on the same pairs. Slowdown rows: both columns are detection rates.")
    print("fail = a rule failed (past threshold AND significant); inc.blk / inc.nb = replicates with an")
    print("inconclusive rule that blocks / does not block the exit code under the policy.")
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
