"""Prefill and decode tokens/s of one GGUF on `local` from the native flavour (agents/native/agent.sh driving
llama-bench), the Python agent (llama-cpp-python) and llama-bench run directly, in paired rounds.

    .venv/bin/python benchmarks/native_vs_python.py [--gguf PATH] [--rounds 6] [--threads 2]
        [--prompt 64] [--new 64] [--reps 5] [--tools DIR]

Each round runs the three in a rotated order (so drift on a shared machine falls on all alike) and prints
each one's figures and its ratio to llama-bench direct; the summary gives the median ratio and a 95% interval
of the mean log ratio over rounds (goal: both flavours within 5% of llama-bench, i.e. ratio in [0.95, 1.05]).
Like for like: llama-bench direct runs the native flavour's own argv (harness/native/llama_bench.py: prefill
pp<P> from an empty context, decode tg<N> at depth P, flash attention off, same threads) and its output goes
through the same parser; the Python agent prefills the same P random tokens in one batch, decodes N - 1
tokens after them (timed per token), flash attention off, n_ctx = P + N (llama-bench's n_ctx for tg<N>@P).
On a loaded machine use --threads 1: two spinning threads on two shared cores measure the neighbours.
Not a timed test: it prints figures.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.spec import WorkloadSpec  # noqa: E402
from agents.stats import t_quantile  # noqa: E402
from harness.native import llama_bench  # noqa: E402
from harness.native.config import NativeConfig  # noqa: E402
from harness.profiles import load_profile  # noqa: E402
from harness.artifacts import inspect  # noqa: E402
from harness.records import ArtifactInfo  # noqa: E402
from harness.runner import DeviceSession, RunOverrides  # noqa: E402

KEYS = ("prefill_tokens_per_s", "decode_tokens_per_s")


def find_tools() -> Path:
    found = sorted((Path.home() / ".cache" / "edgefarm" / "llama-tools").glob("*-host-*/bin/llama-bench"))
    if not found:
        sys.exit("llama-bench is not built: run ci/build_llama_tools.sh")
    return found[-1].parent


def profile(d: Path, name: str, native: Path | None, a: argparse.Namespace) -> Path:
    p = d / f"{name}.toml"
    head = 'agent = "native"\n' if native else ""
    text = (f'schema = 1\nname = "{name}"\nclass = "laptop"\n{head}[transport]\nkind = "local"\n'
            f'workdir = "{d / "w"}"\n[run]\nthreads = {a.threads}\nwarmup_runs = 1\nwarmup_min_s = 0.0\nmin_s = 0.0\n'
            f"gguf_prompt_tokens = {a.prompt}\ngguf_new_tokens = {a.new}\ngguf_repetitions = {a.reps}\n")
    if native:
        text += f'[native]\nllama_bench = "{native / "llama-bench"}"\nlibs = ["{native}"]\n'
    p.write_text(text)
    return p


def gguf_spec(gguf: Path, a: argparse.Namespace) -> WorkloadSpec:
    """The workload all three run (the Python agent's n_ctx as llama-bench sizes it for tg<N>@P)."""
    return WorkloadSpec.from_dict({"artifact": str(gguf), "format": "gguf", "threads": a.threads,
                                   "gguf": {"prompt_tokens": a.prompt, "new_tokens": a.new, "repetitions": a.reps,
                                            "n_ctx": a.prompt + a.new}})


def direct(tools: Path, spec: WorkloadSpec) -> dict[str, float]:
    """llama-bench run by hand with the argv the native flavour gives it, parsed by the same parser."""
    cfg = NativeConfig()
    argv = llama_bench.argv(str(tools / "llama-bench"), spec, spec.threads or 1, cfg)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={"LD_LIBRARY_PATH": str(tools)})
    parsed = llama_bench.parse(out.stdout.splitlines(), out.stderr.splitlines(), spec, cfg)
    return {k: statistics.fmean(parsed.samples[k]) for k in KEYS}


def via(session: DeviceSession, art: ArtifactInfo, spec: WorkloadSpec) -> dict[str, float]:
    rec = session.run_artifact(art, "bench", RunOverrides(extra={"gguf": spec.gguf.as_dict()}))
    if rec.status != "ok":
        sys.exit(f"{session.profile.name}: {rec.status}: {rec.message}")
    return {k: float(rec.metrics[k].value or 0.0) for k in KEYS}


def interval(ratios: list[float]) -> tuple[float, float, float]:
    logs = [math.log(r) for r in ratios]
    m = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(m), float("nan"), float("nan")
    h = t_quantile(0.975, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(m), math.exp(m - h), math.exp(m + h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, default=ROOT / "samples" / "student-llama-q8_0.gguf")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tools", type=Path)
    a = ap.parse_args()
    if not a.gguf.exists():
        sys.exit(f"{a.gguf} does not exist: run `edgefarm samples samples` first")
    tools = a.tools or find_tools()
    d = Path(tempfile.mkdtemp(prefix="edgefarm-nvp-"))
    art = inspect(a.gguf)
    native = DeviceSession(load_profile(profile(d, "native", tools, a)))
    python = DeviceSession(load_profile(profile(d, "python", None, a)))
    spec = gguf_spec(a.gguf, a)
    runners: list[tuple[str, Any]] = [("native", lambda: via(native, art, spec)),
                                      ("python", lambda: via(python, art, spec)),
                                      ("llama-bench", lambda: direct(tools, spec))]
    print(f"{a.gguf.name}: pp{a.prompt} / tg{a.new} @ d{a.prompt}, {a.reps} repetitions, {a.threads} threads, "
          f"flash attention off, {a.rounds} rounds; load average {os.getloadavg()[0]:.1f}")
    print(f"{'round':>5}  {'who':<11} {'prefill tok/s':>13} {'decode tok/s':>12}  {'prefill ratio':>13} {'decode ratio':>12}")
    ratios: dict[tuple[str, str], list[float]] = {(w, k): [] for w in ("native", "python") for k in KEYS}
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C: the agents are cancelled below
    status = 0
    try:
        rounds(a, runners, ratios)
    except KeyboardInterrupt:
        status = 130
        for s in (native, python):  # the agents run in sessions of their own: stop them and their tools
            s.transport.cancel()
        print("interrupted: the rounds so far follow")
    summary(ratios)
    native.close()
    python.close()
    return status


def rounds(a: argparse.Namespace, runners: list[tuple[str, Any]],
           ratios: dict[tuple[str, str], list[float]]) -> None:
    for r in range(a.rounds):
        order = runners[r % 3:] + runners[:r % 3]
        got = {name: fn() for name, fn in order}
        ref = got["llama-bench"]
        for who in ("llama-bench", "native", "python"):
            row = got[who]
            rat = {k: row[k] / ref[k] for k in KEYS}
            if who != "llama-bench":
                for k in KEYS:
                    ratios[(who, k)].append(rat[k])
            print(f"{r + 1:>5}  {who:<11} {row[KEYS[0]]:>13.1f} {row[KEYS[1]]:>12.1f}  {rat[KEYS[0]]:>13.3f} "
                  f"{rat[KEYS[1]]:>12.3f}", flush=True)


def summary(ratios: dict[tuple[str, str], list[float]]) -> None:
    print("\nratio to llama-bench direct: median, geometric mean [95% interval] over rounds; goal 0.95..1.05")
    for (who, k), rs in ratios.items():
        if not rs:
            continue
        g, lo, hi = interval(rs)
        met = "met" if 0.95 <= lo and hi <= 1.05 else "NOT met" if hi < 0.95 or lo > 1.05 else "inconclusive"
        print(f"  {who:<7} {k:<22} median {statistics.median(rs):.3f}  mean {g:.3f} [{lo:.3f}, {hi:.3f}]  {met}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
