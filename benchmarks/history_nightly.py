"""30 nights of a real student on the real agent, recorded in the store; the trend finds the one real change.

    python benchmarks/history_nightly.py                      # SQLite store in a temp dir
    python benchmarks/history_nightly.py --db postgresql://...  # or any store
    python benchmarks/history_nightly.py --compare-python /path/to/python-with-signal-processing-algorithms

Each night is `edgefarm run --device local --artifact student.gguf` (the real agent, llama.cpp), recorded into
the store by `run` itself (EDGEFARM_DB) with branch main and a commit per night. Halfway the student is
"retrained" bigger: the same file name, twice the layers (8 instead of 4), so decode gets slower for real.
Prints each series and its change points (Otava), and whether there is exactly one, at the switch.
With --compare-python, the same series also go through MongoDB's signal-processing-algorithms (E-Divisive
with a permutation test) in that interpreter (it needs numpy < 2, which this venv cannot hold).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.history.db import parse_url  # noqa: E402
from harness.history.store import Store  # noqa: E402
from harness.history.trend import trend  # noqa: E402
from harness.samples.gguf_model import TINY, write_gguf  # noqa: E402

PROFILE = """
schema = 1
name = "local"
class = "laptop"
description = "this machine, nightly-benchmark settings"
ram_mib = 4096
[transport]
kind = "local"
[run]
warmup_runs = 1
gguf_prompt_tokens = 32
gguf_new_tokens = 48
gguf_repetitions = 3
"""
SMALL = replace(TINY, vocab=512, n_embd=256, n_layers=4, n_head=4, n_head_kv=2, n_ff=768)
BIG = replace(SMALL, n_layers=8)
# itl_ms_p50 (median inter-token latency) first: on a shared machine a descheduled process stalls a few tokens
# for hundreds of ms, which moves a mean (decode_tokens_per_s, tpot_ms) far more than the model does.
METRICS = ("itl_ms_p50", "decode_tokens_per_s", "tpot_ms", "ttft_ms")
CHECKED = ("itl_ms_p50",)  # the others are printed; under heavy load their means follow the stalls

SPA_SNIPPET = """
import json, sys, time
import numpy as np
from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive
for name, values in json.load(sys.stdin).items():
    t = time.perf_counter()
    cps = e_divisive(np.array(values, dtype=float), pvalue=0.01, permutations=100)
    print(f"  signal-processing-algorithms {name}: change points at {sorted(int(c) for c in cps)} "
          f"({(time.perf_counter() - t) * 1000:.0f} ms)")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--switch", type=int, default=15, help="first night of the bigger student")
    ap.add_argument("--db", help="store URL (default: a SQLite file in a temp dir)")
    ap.add_argument("--compare-python", help="an interpreter with signal-processing-algorithms installed")
    ap.add_argument("--work", help="keep run directories here (default: a temp dir)")
    ap.add_argument("--analyse-only", action="store_true", help="skip the runs: read the store --work already holds")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="edgefarm-nightly-"))
    (work / "profiles").mkdir(parents=True, exist_ok=True)
    (work / "profiles" / "local.toml").write_text(PROFILE)
    db = args.db or str(work / "history.db")
    student = work / "students" / "student.gguf"
    # A lock directory of its own: this is a benchmark of the store, not a wait on other users of `local`.
    env = {**os.environ, "EDGEFARM_DB": db, "EDGEFARM_BRANCH": "main", "PYTHONPATH": str(ROOT),
           "EDGEFARM_LOCK_DIR": str(work / "locks")}
    t0 = time.perf_counter()
    for i in range(0 if args.analyse_only else args.nights):
        write_gguf(student, SMALL if i < args.switch else BIG, seed=0)
        env["EDGEFARM_COMMIT"] = f"{i:040x}"
        r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--device", "local", "--profiles",
                            str(work / "profiles"), "--artifact", str(student), "--out", str(work / f"night-{i:02d}"),
                            "-q"], env=env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or "not recorded" in r.stderr:
            print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
            return 1
        print(f"night {i:2d} ({'4' if i < args.switch else '8'} layers) recorded", flush=True)
    print(f"{args.nights} nights in {time.perf_counter() - t0:.0f} s; store {db}\n")
    series: dict[str, list[float]] = {}
    ok = True
    with Store(parse_url(db)) as store:
        for m in METRICS:
            t = trend(store, "local", "student.gguf", m)
            series[m] = [p.value for p in t.points]
            at = [c.index for c in t.change_points]
            good = at == [args.switch]
            ok = ok and (good or m not in CHECKED)
            print(f"{m}: {len(t.points)} points; Otava change points at {at} "
                  f"({'one, at the switch' if good else 'NOT exactly one at the switch'})")
            for c in t.change_points:
                print(f"  {c.kind} at night {c.index} ({c.run_id}): {c.mean_before:.4g} -> {c.mean_after:.4g} "
                      f"({c.change_pct:+.1f}%, p={c.pvalue:.1e})")
        print()
        from harness.history.trend import format_trend
        print(format_trend(trend(store, "local", "student.gguf", "decode_tokens_per_s")))
    if args.compare_python:
        r = subprocess.run([args.compare_python, "-c", SPA_SNIPPET], input=json.dumps(series), text=True,
                           capture_output=True, timeout=600)
        print(r.stdout or r.stderr[-2000:])
    print(f"{' and '.join(CHECKED)}: one change point each, at the switch, none elsewhere:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
