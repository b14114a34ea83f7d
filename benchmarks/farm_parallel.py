"""A farm run over local + two SSH boards + one adb phone in parallel vs the slowest of them alone.
Goal: parallel / slowest-alone <= 1.2.

    .venv/bin/python benchmarks/farm_parallel.py [--rounds 2] [--min-s 6] [--formats onnx,tflite]

The devices are the stand-ins (real sshd in network namespaces of their own, the adbd stand-in behind a
private adb server, and this machine), all sharing this machine's CPUs - so every run is duration-bound
(min_s per artifact, few minimum runs, one thread), as a benchmark_model-style run on a real farm is, and
the figure measures the harness's parallelism rather than how many cores the host has. Artifacts are staged
by a first run, so the timed runs transfer nothing (content-addressed) on every side alike.
Fixed costs (connecting, probing, loading runtimes) contend for the shared CPUs in the parallel run: with
short measurements (--min-s 3) they weigh more and the ratio rises on a loaded 2-core host (1.32 seen at
load average 11, against 1.06 with the default 6 s).
Not a timed test: it prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from remote_fixtures import adb_profile, local_profile, ssh_profile  # noqa: E402

from harness.artifacts import inspect  # noqa: E402
from harness.farm import run_farm  # noqa: E402
from harness.profiles import Profile, load_profile  # noqa: E402
from harness.records import ArtifactInfo  # noqa: E402
from harness.runner import RunOverrides  # noqa: E402
from harness.samples import write_samples  # noqa: E402
from harness.standins import adbd, sshd  # noqa: E402


def timed_run(profiles: list[Profile], arts: list[ArtifactInfo], out: Path, o: RunOverrides) -> float:
    t0 = time.perf_counter()
    res = run_farm(profiles, arts, out, o)
    dt = time.perf_counter() - t0
    bad = [(r.device.name, r.artifact.name, r.status, r.message) for r in res.records if r.status != "ok"]
    if bad:
        raise SystemExit(f"runs not ok: {bad}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--min-s", type=float, default=6.0, help="measured seconds per artifact")
    ap.add_argument("--formats", default="onnx,tflite")
    args = ap.parse_args()
    formats = {"." + f for f in args.formats.split(",")}
    o = RunOverrides(warmup_runs=1, min_runs=5, min_s=args.min_s, max_s=args.min_s + 2, threads=1)
    with tempfile.TemporaryDirectory(prefix="edgefarm-farmbench-") as tmp:
        base = Path(tmp)
        arts = [inspect(p) for p in write_samples(base / "samples", "tiny") if p.suffix in formats]
        boards = [sshd.start(base / f"board{i}", netns=True) for i in (1, 2)]
        server = adbd.AdbServer.start()
        phone = adbd.start(base / "phone" / "storage")
        try:
            d = base / "profiles"
            paths = [local_profile(d, "laptop", base / "local-device"),
                     ssh_profile(d, "rpi-a", boards[0]), ssh_profile(d, "rpi-b", boards[1]),
                     adb_profile(d, "pixel", server, phone)]
            profiles = [load_profile(p) for p in paths]
            print(f"devices: {', '.join(f'{p.name} ({p.transport.kind})' for p in profiles)}; "
                  f"artifacts: {', '.join(a.name for a in arts)}; {args.min_s} s measured per artifact")
            timed_run(profiles, arts, base / "stage", o)  # stage agent + artifacts everywhere
            alone: dict[str, list[float]] = {p.name: [] for p in profiles}
            together: list[float] = []
            for r in range(args.rounds):
                for p in profiles:
                    alone[p.name].append(timed_run([p], arts, base / f"alone-{p.name}-{r}", o))
                together.append(timed_run(profiles, arts, base / f"all-{r}", o))
                print(f"  round {r + 1}: alone " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in alone.items())
                      + f"; all four in parallel {together[-1]:.2f} s", flush=True)
            med = {k: statistics.median(v) for k, v in alone.items()}
            slowest = max(med, key=lambda k: med[k])
            par = statistics.median(together)
            ratio = par / med[slowest]
            print(f"\nslowest device alone: {slowest} {med[slowest]:.2f} s (median of {args.rounds})")
            print(f"all four in parallel: {par:.2f} s (median); sequential would be {sum(med.values()):.2f} s")
            print(f"ratio parallel / slowest alone: {ratio:.2f}  (goal <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")
        finally:
            phone.stop()
            server.stop()
            for b in boards:
                b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
