"""`edgefarm demo` quiet and under a bounded CPU hog (2 busy loops for the demo's duration), recorded as fixtures.

    .venv/bin/python benchmarks/demo_hog.py [--out tests/data/demo_runs] [--samples DIR]

Runs the demo twice from this checkout (`python -m harness.cli demo`): once as the machine is, once with two
busy-loop processes started before it and stopped after it (each bounded to 900 s by itself). Prints each run's
exit code, wall time, load average and the hogs' CPU seconds, and copies results.jsonl + run.json of both runs
to OUT/quiet and OUT/hog with a provenance.json; tests/test_demo_hog.py gates them with the demo's policy.
Not a timed test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HOG = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end:\n    pass\n"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def demo(out: Path, samples: Path, hogs: int) -> dict[str, object]:
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    t = time.monotonic()
    load0 = os.getloadavg()[0]
    try:
        r = subprocess.run([sys.executable, "-m", "harness.cli", "demo", "--samples", str(samples), "--out", str(out),
                            "-q"], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=1800)
        wall = time.monotonic() - t
        hog_cpu = [round(cpu_seconds(p.pid), 1) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    tail = [ln for ln in r.stdout.splitlines() if ln.startswith(("PASS", "FAIL", "INCONCLUSIVE", "ERROR", "  "))]
    return {"exit_code": r.returncode, "wall_s": round(wall, 1), "hogs": hogs, "hog_cpu_s": hog_cpu,
            "load_avg_1m_before": round(load0, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(), "verdict_lines": tail[-8:], "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                             time.gmtime())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "data" / "demo_runs"))
    ap.add_argument("--samples", help="sample students directory (default: a temporary one)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgefarm-demo-hog-") as tmp:
        samples = Path(a.samples) if a.samples else Path(tmp) / "samples"
        for name, hogs in (("quiet", 0), ("hog", 2)):
            run = Path(tmp) / name
            info = demo(run, samples, hogs)
            print(f"{name:<5} exit {info['exit_code']}  {info['wall_s']} s  load {info['load_avg_1m_before']} -> "
                  f"{info['load_avg_1m_after']} on {info['cpus']} CPUs  hog CPU s {info['hog_cpu_s']}")
            for line in info["verdict_lines"]:  # type: ignore[attr-defined]
                print(f"      {line}")
            dest = Path(a.out) / name
            dest.mkdir(parents=True, exist_ok=True)
            for f in ("results.jsonl", "run.json"):
                if (run / f).is_file():
                    shutil.copyfile(run / f, dest / f)
            (dest / "provenance.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"fixtures: {a.out}/quiet, {a.out}/hog")
    return 0


if __name__ == "__main__":
    sys.exit(main())
