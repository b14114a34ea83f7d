"""Fault drill on the `local` device, through the real CLI in subprocesses (issue 11's "must show").

1. memory cap: the default-size sample GGUF (~102 MB, mmapped by llama.cpp) under cap_mib = 80 must be `oom`
   (its weights are charged to the capped group because the staged file is evicted from the page cache first).
2. tampered staged copy: 4 KB overwritten in the middle of the cached copy on the device; the next run must
   report the mismatch (needs the agent's on-device sha256 check before loading - reported if absent).
3. SIGINT and SIGTERM mid-run: exit 130/143, no agent or model process left, the device lock free, within 5 s.

    PYTHONPATH=. python benchmarks/fault_drill.py        # prints one line per check and exits 1 if any failed
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fault_helpers import (  # noqa: E402
    edgefarm,
    lock_is_free,
    manifest,
    procs_mentioning,
    result_lines,
    start,
    wait_for,
)

PROFILE = """schema = 1
name = "local"
class = "laptop"
ram_mib = 4096
[transport]
kind = "local"
[memory]
cap_mib = {cap}
[run]
warmup_runs = 1
warmup_min_s = 0.05
min_runs = {min_runs}
min_s = {min_s}
max_s = {max_s}
gguf_prompt_tokens = 16
gguf_new_tokens = 16
gguf_repetitions = {reps}
"""


def profiles(tmp: Path, name: str, *, cap: int = 3072, min_s: float = 0.2, max_s: float = 2.0,
             min_runs: int = 20, reps: int = 2) -> Path:
    d = tmp / name
    d.mkdir()
    (d / "local.toml").write_text(PROFILE.format(cap=cap, min_s=min_s, max_s=max_s, min_runs=min_runs, reps=reps))
    return d


def drill_memory_cap(tmp: Path, gguf: Path) -> bool:
    """80 MiB: the weights alone do not fit (must be `oom`); 400 MiB: all fits (must be `ok`). 120 MiB is shown,
    not judged: the weights fit and the kernel can still page the runtime's own library code in and out."""
    ok_all = True
    for cap, want in ((80, "oom"), (120, None), (400, "ok")):
        out = tmp / f"cap-{cap}"
        res = edgefarm(tmp, "run", "--profiles", str(profiles(tmp, f"p-cap-{cap}", cap=cap)), "--artifact",
                       str(gguf), "--out", str(out), "-q")
        rec = (result_lines(out) or [{}])[0]
        info = (rec.get("provenance") or {}).get("memory_cap") or {}
        peak = ((rec.get("metrics") or {}).get("peak_rss_mib") or {}).get("value")
        ok = want is None or rec.get("status") == want
        ok_all = ok_all and ok
        print(f"[{'INFO' if want is None else 'PASS' if ok else 'FAIL'}] memory cap: {gguf.name} ({gguf.stat().st_size / 2**20:.1f} MiB) under "
              f"cap_mib = {cap} ({info.get('kind')}) -> {rec.get('status')!r} (want {want!r}), exit {res.returncode}, "
              f"group peak {info.get('group_peak_mib')} MiB, weights locked {info.get('weights_locked_mib')} MiB, "
              f"peak_rss_mib {peak}; {str(rec.get('message'))[:160]}")
    return ok_all


def drill_tampered_copy(tmp: Path, gguf: Path) -> bool | None:
    prof = profiles(tmp, "p-tamper")
    first = edgefarm(tmp, "run", "--profiles", str(prof), "--artifact", str(gguf), "--out", str(tmp / "t1"), "-q")
    rec = (result_lines(tmp / "t1") or [{}])[0]
    staged = (rec.get("provenance") or {}).get("push", {}).get("remote_path")
    if first.returncode != 0 or not staged:
        print(f"[FAIL] tampered copy: the first run did not stage the file (exit {first.returncode})")
        return False
    size = os.path.getsize(staged)
    with open(staged, "r+b") as fh:  # 4 KB in the middle, same size: a name-and-size check cannot see it
        fh.seek(size // 2)
        fh.write(os.urandom(4096))
    second = edgefarm(tmp, "run", "--profiles", str(prof), "--artifact", str(gguf), "--out", str(tmp / "t2"), "-q")
    rec2 = (result_lines(tmp / "t2") or [{}])[0]
    msg = str(rec2.get("message") or "")
    if rec2.get("status") != "ok" and ("sha256" in msg or "mismatch" in msg or "tamper" in msg):
        print(f"[PASS] tampered copy: status {rec2.get('status')!r}, exit {second.returncode}: {msg[:200]}")
        return True
    print(f"[DEPENDS] tampered copy: status {rec2.get('status')!r}, exit {second.returncode} - the tampered bytes "
          "were measured: this check depends on the agent verifying the artifact's sha256 on the device before "
          "loading it (issue 10/11, agent side), which has not landed")
    return None


def drill_signal(tmp: Path, onnx: Path, sig: signal.Signals) -> bool:
    name = sig.name
    prof = profiles(tmp, f"p-{name}", min_s=60, max_s=120, min_runs=100000000, reps=100000)
    out = tmp / f"sig-{name}"
    marker = str(tmp / "cache")
    proc = start(tmp, "run", "--profiles", str(prof), "--artifact", str(onnx), "--out", str(out), "-q")
    try:
        wait_for("the model process", lambda: any(" _child " in c for _, c in procs_mentioning(marker)), 120)
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        t_exit = time.monotonic() - t0
        try:
            wait_for("no process left and the lock free",
                     lambda: not procs_mentioning(marker) and lock_is_free(tmp / "locks", "local"), 5)
            t_clean: float | None = time.monotonic() - t0
        except AssertionError:
            t_clean = None
    finally:
        if proc.poll() is None:
            proc.kill()
    recs = result_lines(out)
    left = procs_mentioning(marker)
    m = manifest(out)
    want = 130 if sig == signal.SIGINT else 143
    ok = (proc.returncode == want and t_clean is not None and t_clean <= 5.0 and m.get("interrupted") == name
          and [r["status"] for r in recs] == ["error"])
    print(f"[{'PASS' if ok else 'FAIL'}] {name} mid-run: exit {proc.returncode} (want {want}) after {t_exit:.2f} s; "
          f"no agent/model process and lock free after "
          f"{'%.2f s' % t_clean if t_clean is not None else 'MORE THAN 5 s'} (left: {left}); "
          f"run.json interrupted={m.get('interrupted')} exit_code={m.get('exit_code')}; "
          f"records: {json.dumps([(r['status'], r['message']) for r in recs])[:200]}")
    return ok


def main() -> int:
    from harness.samples import write_samples

    with tempfile.TemporaryDirectory(prefix="edgefarm-drill-") as d:
        tmp = Path(d)
        samples = {p.suffix.lstrip("."): p for p in write_samples(tmp / "samples", size="default")}
        results = [drill_memory_cap(tmp, samples["gguf"]), drill_tampered_copy(tmp, samples["gguf"]),
                   drill_signal(tmp, samples["onnx"], signal.SIGINT),
                   drill_signal(tmp, samples["onnx"], signal.SIGTERM)]
    failed = sum(r is False for r in results)
    pending = sum(r is None for r in results)
    print(f"fault drill: {len(results) - failed - pending} passed, {failed} failed, {pending} depend on other work")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
