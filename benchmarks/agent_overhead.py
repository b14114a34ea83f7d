"""The agent's own overhead: its idle RSS over a bare interpreter, the model process's start cost (time to
its `load` phase, its peak RSS on a tiny model), and decode tokens/s through the agent vs llama-cpp-python
called directly on the same GGUF (goal: ratio >= 0.97).

    .venv/bin/python benchmarks/agent_overhead.py [--gguf PATH] [--rounds 5] [--threads N]
        [--baseline-agent OLD/agents/agent.py] [--start-rounds 8] [--no-decode]

The agent runs as on a device: its zip unpacked (and byte-compiled) by harness/deploy.py's unpack step, then
`python -m agents`. With --baseline-agent (a single-file agent.py, e.g. from an older checkout, or another
unpacked package directory) the idle RSS and start cost of both are measured in the same run, interleaved,
and printed side by side.

Both paths run the model in a fresh process with the same Llama parameters, the same prompt (BOS + seeded
random ids) and token counts, one cold request and one warmup request, then `--reps` measured requests;
the rounds interleave them (ABBA order) so drift on a shared machine falls on both alike, and the verdict
comes from a 95% interval on the paired ratios: met, not met, or inconclusive. Wall-clock tokens/s is the
goal's figure; on a contended machine it is noisy, so the model process's CPU time per measured request
(from the agent's per-phase cpu_s and process_time() in the direct path) is compared as well.
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
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.stats import t_quantile  # noqa: E402  (the agent's own t quantile: no scipy here)

Agent = tuple[list[str], dict[str, str]]  # argv prefix, environment


def unpacked_agent() -> Agent:
    """This checkout's agent as a device gets it: the zip, unpacked and byte-compiled by deploy's unpack step."""
    from harness import deploy

    zip_path = deploy.agent_archive()
    dest = Path(tempfile.mkdtemp(prefix="edgefarm-bench-agent-")) / f"agent-{zip_path.stem}"
    subprocess.run([sys.executable, "-c", deploy._UNPACK_SNIPPET, str(zip_path), str(dest), zip_path.stem],
                   check=True, capture_output=True)
    return [sys.executable, "-m", "agents"], {**os.environ, "PYTHONPATH": str(dest)}


def agent_at(path: Path) -> Agent:
    """An agent given on the command line: a single agent.py file, or a directory holding the agents package."""
    if path.is_file():
        return [sys.executable, str(path)], dict(os.environ)
    return [sys.executable, "-m", "agents"], {**os.environ, "PYTHONPATH": str(path)}


AGENT: Agent = ([], {})  # set in main()

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
    if rep == 2:
        cpu0 = time.process_time()
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
print(json.dumps({"decode_tokens_per_s": rates, "cpu_s_per_request": (time.process_time() - cpu0) / a["reps"]}))
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


def agent_idle_rss(model: Path, threads: int, agent: Agent | None = None) -> dict[str, int]:
    """The agent process's RSS while its model process measures (the agent waits on the child): the median of
    readings every 0.1 s from the `measure` phase event to the `done` one. max_runs is lifted so a fast model
    measures for min_s, and no reading falls after the measurement, when the agent summarises."""
    argv, env = agent or AGENT
    spec = {"artifact": str(model), "threads": threads, "warmup_runs": 0, "warmup_min_s": 0.0, "min_s": 3.0,
            "max_s": 10.0, "max_runs": 10**9,
            "gguf": {"prompt_tokens": 16, "new_tokens": 16, "repetitions": 1, "n_ctx": 64}}
    p = subprocess.Popen([*argv, "run", json.dumps(spec)], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None
    readings: list[dict[str, int]] = []
    measuring = threading.Event()
    done = threading.Event()

    def poll() -> None:
        measuring.wait()
        while not done.wait(0.1):
            try:
                readings.append(rss_kib(p.pid))
            except OSError:
                return

    poller = threading.Thread(target=poll)
    poller.start()
    for line in p.stdout:
        ev = json.loads(line)
        if ev.get("event") == "phase" and ev.get("phase") == "measure":
            measuring.set()
        elif ev.get("event") == "phase" and ev.get("phase") == "done" or ev.get("event") == "result":
            done.set()
    done.set()
    measuring.set()
    poller.join()
    p.wait()
    if not readings:
        return {}
    return {k: int(statistics.median(r.get(k, 0) for r in readings)) for k in ("VmRSS", "VmHWM")}


Measured = tuple[list[float], float]  # decode tok/s per request, CPU seconds per measured request


def through_agent(gguf: Path, a: dict[str, Any]) -> Measured:
    spec = {"artifact": str(gguf), "threads": a["threads"], "seed": a["seed"], "warmup_runs": 1,
            "warmup_min_s": 0.0, "min_s": 0.0, "max_s": 600.0, "timeout_s": 900,
            "gguf": {"prompt_tokens": a["prompt_tokens"], "new_tokens": a["new_tokens"], "repetitions": a["reps"],
                     "n_ctx": a["n_ctx"]}}
    out = subprocess.run([*AGENT[0], "run", json.dumps(spec)], capture_output=True, text=True, check=True,
                         env=AGENT[1]).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if res["status"] != "ok":
        raise SystemExit(f"agent run failed: {res['status']}: {res['message']}")
    measure = [p for p in res["phases"] if p["name"] == "measure"][0]
    return res["samples"]["decode_tokens_per_s"], measure["cpu_s"] / len(res["samples"]["ttft_ms"])


def start_cost(model: Path, agent: Agent) -> tuple[float, float, float]:
    """(seconds from launching `run` to the model process's `load` phase, the model process's peak RSS MiB and
    the kernel's ru_maxrss MiB for it) on a tiny model: interpreter start, agent imports, runtime import."""
    argv, env = agent
    spec = {"artifact": str(model), "threads": 1, "warmup_runs": 1, "warmup_min_s": 0.0, "min_runs": 20,
            "min_s": 0.0, "max_s": 10.0}
    t0 = time.monotonic()
    p = subprocess.Popen([*argv, "run", json.dumps(spec)], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None
    t_load, res = math.nan, {}
    for line in p.stdout:
        ev = json.loads(line)
        if ev.get("phase") == "load":
            t_load = time.monotonic() - t0
        if ev.get("event") == "result":
            res = ev
    p.wait()
    if res.get("status") != "ok":
        raise SystemExit(f"start-cost run failed: {res.get('status')}: {res.get('message')}")
    return t_load, res["metrics"]["peak_rss_mib"]["value"], res["os_peak_rss_mib"]


def compare_start(model: Path, agents: dict[str, Agent], rounds: int) -> None:
    """Idle RSS and start cost of each agent, interleaved round by round (ABBA), medians printed."""
    got: dict[str, list[tuple[float, float, float]]] = {k: [] for k in agents}
    idle: dict[str, list[float]] = {k: [] for k in agents}
    names = list(agents)
    for name in names:  # first runs byte-compile (the old agent) or warm the page cache: not counted
        start_cost(model, agents[name])
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            got[name].append(start_cost(model, agents[name]))
            idle[name].append(agent_idle_rss(model, 1, agents[name]).get("VmRSS", 0) / 1024)
    print(f"model-process start cost on {model.name} ({rounds} interleaved rounds, medians):")
    for name in names:
        t = statistics.median(x[0] for x in got[name])
        peak = statistics.median(x[1] for x in got[name])
        ru = statistics.median(x[2] for x in got[name])
        print(f"  {name:9s} launch -> load phase {t * 1e3:7.1f} ms; model process peak RSS {peak:6.1f} MiB "
              f"(ru_maxrss {ru:6.1f}); agent idle RSS {statistics.median(idle[name]):5.1f} MiB")
    if len(names) == 2:
        a, b = names
        ratio = [x[0] / y[0] for x, y in zip(got[b], got[a])]
        print(f"  {b} / {a}: launch->load time x{statistics.median(ratio):.3f} (median of paired rounds), "
              f"peak RSS {statistics.median(x[1] for x in got[b]) - statistics.median(x[1] for x in got[a]):+.1f} MiB, "
              f"idle RSS {statistics.median(idle[b]) - statistics.median(idle[a]):+.1f} MiB")


def tiny_tflite() -> Path:
    path = Path(tempfile.gettempdir()) / "edgefarm-bench" / "tiny" / "student-tiny.tflite"
    if not path.exists():
        from harness.samples import write_samples

        path.parent.mkdir(parents=True, exist_ok=True)
        write_samples(path.parent, "tiny")
    return next(path.parent.glob("*.tflite"))


def direct(gguf: Path, a: dict[str, Any]) -> Measured:
    out = subprocess.run([sys.executable, "-c", DIRECT, json.dumps({**a, "gguf": str(gguf)})],
                         capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return res["decode_tokens_per_s"], res["cpu_s_per_request"]


def default_gguf() -> Path:
    path = Path(tempfile.gettempdir()) / "edgefarm-bench" / "student-llama-q8_0.gguf"
    if not path.exists():
        from harness.samples import gguf_model, write_gguf

        path.parent.mkdir(parents=True, exist_ok=True)
        write_gguf(path, gguf_model.DEFAULT)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--gguf", type=Path, help="GGUF to decode (default: the ~107 MB sample, generated once)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved agent/direct rounds (default 10)")
    ap.add_argument("--reps", type=int, default=5, help="measured requests per run (default 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="llama.cpp threads on both paths (default 1: on a shared machine more threads mostly add "
                         "spin-wait noise)")
    ap.add_argument("--baseline-agent", type=Path, help="an older agent (agent.py file or package dir) to compare "
                    "idle RSS and start cost with, in the same run")
    ap.add_argument("--start-rounds", type=int, default=8, help="interleaved rounds of the start-cost comparison")
    ap.add_argument("--no-decode", action="store_true", help="skip the decode tokens/s comparison")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--nice", type=int, default=-10,
                    help="niceness for both paths (default -10 where permitted: on a shared machine the model "
                         "processes then get a core when they need it; 0 leaves it alone)")
    args = ap.parse_args()
    global AGENT
    AGENT = unpacked_agent()
    niceness = os.nice(0)
    if args.nice:
        try:
            niceness = os.nice(args.nice - niceness)
        except OSError:
            print(f"(could not set niceness {args.nice}; measuring at {niceness})")
    gguf = None if args.no_decode else args.gguf or default_gguf()
    a = {"threads": args.threads, "seed": 0, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
         "reps": args.reps, "n_ctx": max(128, args.prompt_tokens + args.new_tokens)}

    agents = {"new": AGENT} if args.baseline_agent is None else {"baseline": agent_at(args.baseline_agent),
                                                                    "new": AGENT}
    compare_start(tiny_tflite(), agents, args.start_rounds)
    bare = bare_interpreter_rss()
    idle_on = tiny_tflite() if gguf is None else gguf
    idle = agent_idle_rss(idle_on, args.threads)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; niceness {niceness}; "
          f"python {sys.version.split()[0]}; agent idle RSS read while it waits on {idle_on.name}")
    print(f"bare interpreter RSS     {bare['VmRSS'] / 1024:7.1f} MiB")
    print(f"agent idle RSS           {idle.get('VmRSS', 0) / 1024:7.1f} MiB (while its model process measures; "
          f"agent peak {idle.get('VmHWM', 0) / 1024:.1f} MiB)")
    print(f"agent overhead           {(idle.get('VmRSS', 0) - bare['VmRSS']) / 1024:+7.1f} MiB over a bare interpreter")
    if gguf is None:
        return 0
    print(f"GGUF {gguf} ({gguf.stat().st_size / 1e6:.1f} MB); threads {args.threads}; prompt {args.prompt_tokens}, "
          f"new {args.new_tokens}, {args.reps} reps x {args.rounds} rounds")

    wall: dict[str, list[float]] = {"agent": [], "direct": []}
    cpu: dict[str, list[float]] = {"agent": [], "direct": []}
    for r in range(args.rounds):
        for who in (("agent", "direct") if r % 2 == 0 else ("direct", "agent")):
            rates, cpu_s = through_agent(gguf, a) if who == "agent" else direct(gguf, a)
            wall[who].append(statistics.fmean(rates))
            cpu[who].append(cpu_s)
        print(f"round {r + 1}: decode agent {wall['agent'][-1]:7.1f} tok/s, direct {wall['direct'][-1]:7.1f} tok/s "
              f"(ratio {wall['agent'][-1] / wall['direct'][-1]:.3f}); CPU per request agent "
              f"{cpu['agent'][-1] * 1e3:7.1f} ms, direct {cpu['direct'][-1] * 1e3:7.1f} ms; "
              f"load avg {os.getloadavg()[0]:.1f}", flush=True)
    print(summary("decode tokens/s (wall clock), agent / direct", wall["agent"], wall["direct"], goal=0.97))
    print(summary("CPU cost per request, direct / agent (contention-proof: the model process's own CPU time)",
                  cpu["direct"], cpu["agent"], goal=0.97))
    return 0


def summary(what: str, num: list[float], den: list[float], goal: float) -> str:
    """Geometric mean of the paired ratios num/den with a 95% t-interval on their logs, and a verdict."""
    logs = [math.log(x / y) for x, y in zip(num, den)]
    n = len(logs)
    centre = math.exp(statistics.fmean(logs))
    line = f"{what}: {centre:.3f} (geometric mean of {n} paired rounds"
    if n < 2:
        return line + f"; one round, no interval; goal >= {goal})"
    half = t_quantile(0.975, n - 1) * statistics.stdev(logs) / math.sqrt(n)
    lo, hi = math.exp(statistics.fmean(logs) - half), math.exp(statistics.fmean(logs) + half)
    verdict = "met" if lo >= goal else "NOT met" if hi < goal else "inconclusive (the interval straddles it)"
    return line + f", 95% CI {lo:.3f}..{hi:.3f}); goal >= {goal}: {verdict}"


if __name__ == "__main__":
    sys.exit(main())
