"""30 simulated days of field traffic through a real Prometheus: false alarms and detection delays of
`edgefarm drift`, and how fast it answers over a month of series.

    PYTHONPATH=. .venv/bin/python benchmarks/drift_sim.py [--seeds 2]

Traffic (harness/telemetry/traffic.py): Poisson arrivals with a 6:1 day/night swing, log-normal latency with
a +-3% day/night component and a 2% per-hour random effect, 0.1% OOMs, for two device classes per model.
Each model's series are written as OpenMetrics at 30-minute scrape times and backfilled with promtool, then
read back over the HTTP API. Models: steady; +15% latency from day 20 01:00; OOMs at 2% of requests from
then; and a release whose artifact is silently swapped for a perturbed student (other weights) then.
Sampled outputs (12 per window and class) are real llama.cpp generations of the probe prompts by the sample
GGUF student and by the perturbed one, scored against the stable student's reference outputs with MiniLM.
Every window of the month is judged as a scheduled job would have judged it at its end (no look-ahead).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.samples.gguf_model import TINY, write_gguf
from harness.telemetry import contract as c
from harness.telemetry import openmetrics
from harness.telemetry.behaviour import minilm_similarity, score
from harness.telemetry.evaluate import Context, evaluate_series
from harness.telemetry.policy import DEFAULT_POLICY, load_policy
from harness.telemetry.probes import PROBES, generate
from harness.telemetry.promql import fetch_windows
from harness.telemetry.promserver import PrometheusServer, backfill
from harness.telemetry.traffic import Step, TrafficSpec
from harness.telemetry.window import merge_models

DAY = 86400.0
CLASSES = (("pixel7", 0.18), ("low-ram", 0.40))
FLAGGED = ("drift", "rollback")


def timed(argv: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall and CPU (user + sys) seconds of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), r


def sha(tag: str) -> str:
    return (tag * 64)[:64]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1, help="independent months of traffic to simulate")
    ap.add_argument("--samples-per-window", type=int, default=12)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="drift_sim_"))
    t0 = time.perf_counter()
    stable_gguf = write_gguf(work / "student.gguf", TINY, seed=0)
    perturbed_gguf = write_gguf(work / "perturbed.gguf", TINY, seed=1)
    reference = dict(generate(stable_gguf, PROBES))
    pools = {"stable": generate(stable_gguf, PROBES), "perturbed": generate(perturbed_gguf, PROBES)}
    print(f"real generations: {3 * len(PROBES)} (reference, stable, perturbed) in {time.perf_counter() - t0:.1f} s")
    sim = minilm_similarity()
    pol = load_policy(None)
    end = math.floor(time.time() / DAY) * DAY - DAY
    start = end - 30 * DAY
    change = start + 20 * DAY + 3600.0
    w = pol.window_s
    total_false, total_evals = 0, 0
    for seed in range(args.seeds):
        rng = random.Random(seed)
        models: dict[str, list[tuple[TrafficSpec, float, float]]] = {
            "steady": [], "latency+15%": [], "oom 2%": [], "swapped student": []}
        for i, (dc, med) in enumerate(CLASSES):
            models["steady"].append((TrafficSpec("1.0.0", sha("a"), dc, latency_median_s=med), start, end))
            models["latency+15%"].append((TrafficSpec("2.0.0", sha("b"), dc, latency_median_s=med,
                                                      steps=(Step(change, 1.15),)), start, end))
            models["oom 2%"].append((TrafficSpec("3.0.0", sha("c"), dc, latency_median_s=med,
                                                 steps=(Step(change, oom_rate=0.02),)), start, end))
            models["swapped student"] += [(TrafficSpec("4.0.0", sha("d"), dc, latency_median_s=med), start, change),
                                          (TrafficSpec("4.0.0", sha("e"), dc, latency_median_s=med), change, end)]
        series = []
        for k, (name, parts) in enumerate(models.items()):
            for j, (spec, s0, s1) in enumerate(parts):
                series.append(openmetrics.simulate(spec, s0, s1, 1800.0, seed=seed * 1000 + k * 10 + j))
        d = work / f"seed{seed}"
        d.mkdir()
        with open(d / "month.om", "w") as fh:
            lines = openmetrics.write(fh, series)
        t1 = time.perf_counter()
        backfill(d / "month.om", d / "data")
        print(f"\nseed {seed}: {lines} OpenMetrics samples backfilled in {time.perf_counter() - t1:.1f} s")
        with PrometheusServer(d) as prom:
            for name, parts in models.items():
                version = parts[0][0].model_version
                samples = []
                for ws in range(int(start), int(end), int(w)):
                    for dc, _ in CLASSES:
                        for _ in range(args.samples_per_window):
                            t = ws + rng.uniform(0, w)
                            pool = pools["perturbed" if name == "swapped student" and t >= change else "stable"]
                            pid, text = pool[rng.randrange(len(pool))]
                            samples.append(c.SampleRecord(t, version, sha("x"), dc, pid, text))
                ctx = Context(pol, scored=score(samples, reference, sim), behaviour_on=True)
                t2 = time.perf_counter()
                windows = merge_models(fetch_windows(prom.url, version, start, end, w), version)
                fetched = time.perf_counter() - t2
                verdicts = evaluate_series(windows, ctx)
                judged = time.perf_counter() - t2 - fetched
                before = [v for v in verdicts if v.end <= change]
                after = [v for v in verdicts if v.end > change]
                false = [(v.end, f.device_class, f.metric, f.against) for v in before for f in v.findings
                         if f.verdict in FLAGGED]
                evals = sum(len({f.device_class for f in v.findings}) for v in before)
                total_false += len(false)
                total_evals += evals
                line = (f"  {name:16s} fetched {len(windows)} windows in {fetched:.2f} s, judged {len(verdicts)} "
                        f"in {judged:.2f} s; false alarms before the change: {len(false)} of {evals} "
                        "window x class verdicts")
                if name != "steady":
                    first = next((i for i, v in enumerate(after, 1) if v.verdict in FLAGGED), None)
                    flagged = sorted({f"{f.metric}:{f.verdict}" for f in after[first - 1].findings
                                      if f.verdict in FLAGGED}) if first else []
                    line += (f"; flagged in window {first} after the change ({', '.join(flagged)}), "
                             f"{(after[first - 1].end - change) / 3600:.0f} h after it" if first else
                             "; NOT flagged")
                else:
                    false_after = sum(1 for v in after for f in v.findings if f.verdict in FLAGGED)
                    total_false += false_after
                    total_evals += sum(len({f.device_class for f in v.findings}) for v in after)
                    line += f" (+{false_after} after)"
                print(line)
                for f in false[:5]:
                    print(f"    false alarm: {c.rfc3339(f[0])} {f[1]} {f[2]} vs {f[3]}")
            month_policy = d / "month_policy.toml"
            month_policy.write_text(DEFAULT_POLICY.read_text().replace("history = 7", "history = 29"))
            for label, polfile in (("default policy (7 days)", DEFAULT_POLICY), ("history = 29 (a month)",
                                                                                 month_policy)):
                wall, cpu, r = timed([sys.executable, "-m", "harness.cli", "drift", "--policy", str(polfile),
                                      "--model", sha("a"), "--prometheus", prom.url, "--at", c.rfc3339(end),
                                      "--out", str(d / "report")])
                floor_wall, floor_cpu, _ = timed([sys.executable, "-m", "harness.cli", "--help"])
                print(f"  `edgefarm drift --prometheus` ({label}): exit {r.returncode}, {wall:.2f} s wall, "
                      f"{cpu:.2f} s CPU; peer `edgefarm --help` (interpreter + imports) {floor_wall:.2f} s wall, "
                      f"{floor_cpu:.2f} s CPU; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\nfalse alarms (drift or rollback on unchanged traffic): {total_false} of {total_evals} "
          "window x device-class verdicts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
