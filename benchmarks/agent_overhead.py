"""The agent's own overhead: its idle RSS over a bare interpreter, and decode tokens/s through the agent
vs llama-cpp-python called directly on the same GGUF (goal: ratio >= 0.97).

    .venv/bin/python benchmarks/agent_overhead.py [--gguf PATH] [--rounds 5] [--threads N]

Both paths run the model in a fresh process with the same Llama parameters, the same prompt (BOS + seeded
random ids) and token counts, one cold request and one warmup request, then `--reps` measured requests;
the rounds interleave them (ABBA order) so drift on a shared machine falls on both alike, and the verdict
comes from a 95% interval on the paired ratios: met, not met, or inconclusive.
Not a timed test: it prints figures.
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
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "agents" / "agent.py"

# The direct path: what a user would write with llama-cpp-python, timing only eval + greedy sample.
DIRECT = r"""
import json, math, random, sys, time
import llama_cpp
a = json.loads(sys.argv[1])
llm = llama_cpp.Llama(model_path=a["gguf"], n_ctx=a["n_ctx"], n_batch=max(512, a["prompt_tokens"]),
                      n_threads=a["threads"], n_threads_batch=a["threads"], seed=a["seed"], verbose=True)
rng = random.Random(a["seed"])
prompt = [llm.token_bos()] + [rng.randrange(llm.n_vocab()) for _ in range(a["prompt_tokens"] - 1)]
smpl, ctx, sample = llama_cpp.llama_sampler_init_greedy(), llm.ctx, llama_cpp.llama_sampler_sample
pc = time.perf_counter
rates = []
for rep in range(2 + a["reps"]):  # cold, warmup, measured
    itl = []
    llm.reset()
    llm.eval(prompt)
    tok = sample(smpl, ctx, -1)
    prev = pc()
    for _ in range(a["new_tokens"] - 1):
        llm.eval([tok])
        tok = sample(smpl, ctx, -1)
        t = pc()
        itl.append(t - prev)
        prev = t
    if rep >= 2:
        rates.append(len(itl) / math.fsum(itl))
print(json.dumps({"decode_tokens_per_s": rates}))
"""


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def bare_interpreter_rss() -> dict[str, int]:
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    time.sleep(0.5)
    try:
        return rss_kib(p.pid)
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait()


def agent_idle_rss(gguf: Path, threads: int) -> dict[str, int]:
    """The agent process's RSS while its model process measures (the agent waits on the child)."""
    spec = {"artifact": str(gguf), "threads": threads, "warmup_runs": 0, "warmup_min_s": 0.0, "min_s": 3.0,
            "max_s": 10.0, "gguf": {"prompt_tokens": 16, "new_tokens": 16, "repetitions": 1, "n_ctx": 64}}
    p = subprocess.Popen([sys.executable, str(AGENT), "run", json.dumps(spec)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    seen: dict[str, int] = {}
    for line in p.stdout:
        ev = json.loads(line)
        if ev.get("phase") == "measure":
            time.sleep(1.0)
            seen = rss_kib(p.pid)
    p.wait()
    return seen


def through_agent(gguf: Path, a: dict[str, Any]) -> list[float]:
    spec = {"artifact": str(gguf), "threads": a["threads"], "seed": a["seed"], "warmup_runs": 1,
            "warmup_min_s": 0.0, "min_s": 0.0, "max_s": 600.0, "timeout_s": 900,
            "gguf": {"prompt_tokens": a["prompt_tokens"], "new_tokens": a["new_tokens"], "repetitions": a["reps"],
                     "n_ctx": a["n_ctx"]}}
    out = subprocess.run([sys.executable, str(AGENT), "run", json.dumps(spec)], capture_output=True, text=True,
                         check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if res["status"] != "ok":
        raise SystemExit(f"agent run failed: {res['status']}: {res['message']}")
    rates: list[float] = res["samples"]["decode_tokens_per_s"]
    return rates


def direct(gguf: Path, a: dict[str, Any]) -> list[float]:
    out = subprocess.run([sys.executable, "-c", DIRECT, json.dumps({**a, "gguf": str(gguf)})],
                         capture_output=True, text=True, check=True).stdout
    rates: list[float] = json.loads(out.strip().splitlines()[-1])["decode_tokens_per_s"]
    return rates


def default_gguf() -> Path:
    path = Path(tempfile.gettempdir()) / "edgefarm-bench" / "student-llama-q8_0.gguf"
    if not path.exists():
        sys.path.insert(0, str(ROOT))
        from harness.samples import gguf_model, write_gguf

        path.parent.mkdir(parents=True, exist_ok=True)
        write_gguf(path, gguf_model.DEFAULT)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--gguf", type=Path, help="GGUF to decode (default: the ~107 MB sample, generated once)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved agent/direct rounds (default 5)")
    ap.add_argument("--reps", type=int, default=5, help="measured requests per run (default 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="llama.cpp threads on both paths (default 1: on a shared machine more threads mostly add "
                         "spin-wait noise)")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    gguf = args.gguf or default_gguf()
    a = {"threads": args.threads, "seed": 0, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
         "reps": args.reps, "n_ctx": max(128, args.prompt_tokens + args.new_tokens)}

    bare = bare_interpreter_rss()
    idle = agent_idle_rss(gguf, args.threads)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; python {sys.version.split()[0]}; GGUF {gguf} ({gguf.stat().st_size / 1e6:.1f} MB); "
          f"threads {args.threads}; prompt {args.prompt_tokens}, new {args.new_tokens}, {args.reps} reps x "
          f"{args.rounds} rounds")
    print(f"bare interpreter RSS     {bare['VmRSS'] / 1024:7.1f} MiB")
    print(f"agent idle RSS           {idle.get('VmRSS', 0) / 1024:7.1f} MiB (while its model process measures; "
          f"agent peak {idle.get('VmHWM', 0) / 1024:.1f} MiB)")
    print(f"agent overhead           {(idle.get('VmRSS', 0) - bare['VmRSS']) / 1024:+7.1f} MiB over a bare interpreter")

    agent_means: list[float] = []
    direct_means: list[float] = []
    for r in range(args.rounds):
        order = (("agent", "direct") if r % 2 == 0 else ("direct", "agent"))
        for who in order:
            rates = through_agent(gguf, a) if who == "agent" else direct(gguf, a)
            (agent_means if who == "agent" else direct_means).append(statistics.fmean(rates))
        print(f"round {r + 1}: agent {agent_means[-1]:8.1f} tok/s   direct {direct_means[-1]:8.1f} tok/s   "
              f"ratio {agent_means[-1] / direct_means[-1]:.3f}   load avg {os.getloadavg()[0]:.1f}", flush=True)
    print(summary(agent_means, direct_means, goal=0.97))
    return 0


def summary(agent: list[float], direct: list[float], goal: float) -> str:
    """Geometric mean of the paired ratios with a 95% t-interval on their logs, and a three-way verdict."""
    sys.path.insert(0, str(ROOT / "agents"))
    from agent import t_quantile  # the agent's own t quantile: no scipy here

    logs = [math.log(x / y) for x, y in zip(agent, direct)]
    n = len(logs)
    centre = math.exp(statistics.fmean(logs))
    line = (f"decode tokens/s: agent median {statistics.median(agent):.1f}, direct median "
            f"{statistics.median(direct):.1f}; ratio (geometric mean of {n} paired rounds) {centre:.3f}")
    if n < 2:
        return line + f"; one round: no interval (goal >= {goal})"
    half = t_quantile(0.975, n - 1) * statistics.stdev(logs) / math.sqrt(n)
    lo, hi = math.exp(statistics.fmean(logs) - half), math.exp(statistics.fmean(logs) + half)
    verdict = "met" if lo >= goal else "NOT met" if hi < goal else "inconclusive (interval straddles the goal)"
    return line + f", 95% CI {lo:.3f}..{hi:.3f}; goal >= {goal}: {verdict}"


if __name__ == "__main__":
    sys.exit(main())
