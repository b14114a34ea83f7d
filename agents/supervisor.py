"""The agent's side of the model process: start it, relay its events, kill it on timeout, and decide the status.

The status of a run (ok / oom / timeout / crashed / error) is decided in `fill_result`, and only there.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO, List, Optional, Tuple

from agents.procfs import cgroup_oom_kills
from agents.protocol import Json, emit
from agents import contention
from agents.result import AgentResult, looks_like_oom
from agents.spec import WorkloadSpec


class Supervised:
    """What the agent saw of its model process: events, exit status, rusage, whether it was killed."""

    def __init__(self) -> None:
        self.child: Optional[Json] = None  # the child_result event
        self.samples: Json = {}
        self.alternate_samples: Optional[Json] = None  # spec.alternate: the second model's samples
        self.phases: List[Json] = []
        self.hosts: List[Json] = []  # the host's CPU pressure/steal counters as each phase event arrived
        self.status = 0
        self.rusage: Any = None
        self.timed_out = False
        self.t_end = 0.0
        self.stderr_tail = ""


def run_child(spec: WorkloadSpec, res: AgentResult) -> None:
    """Run the model in a child process; relay its phase events; fill `res` from what happened."""
    env = dict(os.environ)
    if spec.rlimit_as_mib is not None:
        env["MALLOC_ARENA_MAX"] = "2"  # fewer 64 MiB malloc arenas: RLIMIT_AS counts address space
    env.setdefault("GGML_NO_BACKTRACE", "1")  # ggml_abort would attach gdb to print a backtrace first
    env["EDGEFARM_AGENT_PID"] = str(os.getpid())
    # The model process runs `-m agents` from the same directory this package was imported from.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    oom_before = cgroup_oom_kills()
    with _scratch_file() as log:
        r_fd, w_fd = os.pipe()
        argv = [sys.executable, "-m", "agents", "_child", str(w_fd), json.dumps(spec.to_dict())]
        deadline = time.monotonic() + spec.timeout_s
        # A process group of its own (killed whole on timeout), but not a session of its own: under the
        # kernel's autogroup scheduling a new session is weighed as a separate group, so the model would
        # get a different CPU share than the same runtime run by hand, and niceness would not carry over.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(w_fd,),
                                preexec_fn=os.setpgrp, env=env, close_fds=True)
        os.close(w_fd)

        def stop(signum: int, frame: Any) -> None:  # the agent is being stopped: take the model with it
            _killpg(proc.pid)
            os._exit(128 + signum)

        old_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            sv = supervise(proc, r_fd, deadline)
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 8192))
        sv.stderr_tail = log.read().decode("utf-8", "replace")
    cg_oom = oom_before is not None and (cgroup_oom_kills() or 0) > oom_before
    fill_result(res, spec, sv, cg_oom)


def _scratch_file() -> "BinaryIO":
    """An unnamed file for the model process's stdout and stderr, in the first writable one of $TMPDIR, $TEMP,
    $TMP, /tmp, /var/tmp, /data/local/tmp and the working directory (tempfile's rule, without importing tempfile,
    which costs the waiting agent ~1.1 MiB of resident memory: benchmarks/agent_overhead.py)."""
    dirs = [os.environ.get(k) for k in ("TMPDIR", "TEMP", "TMP")] + ["/tmp", "/var/tmp", "/data/local/tmp", "."]
    err: Optional[OSError] = None
    for d in dirs:
        if not d:
            continue
        path = os.path.join(d, "edgefarm-agent-%d-%d.log" % (os.getpid(), time.monotonic_ns()))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as e:
            err = e
            continue
        os.unlink(path)  # gone from the directory at once; the open file lives until closed
        return os.fdopen(fd, "w+b")
    raise err or OSError("no writable temporary directory")


def supervise(proc: "subprocess.Popen[bytes]", r_fd: int, deadline: float) -> Supervised:
    """Read the child's events (relaying phases at once) until it exits or the deadline passes."""
    sv = Supervised()
    buf = [b""]

    def feed(chunk: bytes) -> None:
        buf[0] += chunk
        while b"\n" in buf[0]:
            line, buf[0] = buf[0].split(b"\n", 1)
            try:
                ev = json.loads(line.decode("utf-8"))
            except ValueError:
                continue
            kind = ev.get("event") if isinstance(ev, dict) else None
            if kind == "phase":
                sv.phases.append(ev)
                sv.hosts.append(contention.host_cpu())
                emit(ev)  # relayed as it happens
            elif kind == "progress":
                emit(ev)  # relayed, never stored
            elif kind == "child_result":
                sv.child = ev
            elif kind == "child_samples":
                sv.samples = ev.get("samples") or {}
                sv.alternate_samples = ev.get("alternate_samples")

    eof = False
    reaped: Optional[Tuple[int, Any]] = None
    with os.fdopen(r_fd, "rb", buffering=0) as rd:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                sv.timed_out = True
                break
            if not eof and select.select([rd], [], [], min(left, 0.25))[0]:
                chunk = rd.read(65536)
                if chunk:
                    feed(chunk)
                    continue
                eof = True
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = (status, ru)
                while not eof and select.select([rd], [], [], 0)[0]:  # what is left, without blocking
                    chunk = rd.read(65536)
                    eof = not chunk
                    feed(chunk)
                break
            if eof:
                time.sleep(0.01)
    if sv.timed_out or not eof:  # on timeout, or a grandchild still holds the pipe: end the whole group
        _killpg(proc.pid)
    if reaped is None:
        _, status, ru = os.wait4(proc.pid, 0)
    else:
        status, ru = reaped
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else -1
    sv.status, sv.rusage, sv.t_end = status, ru, time.monotonic()
    return sv


def fill_result(res: AgentResult, spec: WorkloadSpec, sv: Supervised, cg_oom: bool) -> None:
    """The run's status, decided here and nowhere else, with message, signal, metrics and memory figures."""
    maxrss_kib = sv.rusage.ru_maxrss / (1024.0 if sys.platform == "darwin" else 1.0)
    res.os_peak_rss_mib = round(maxrss_kib / 1024.0, 3)
    res.phases = _phase_list(sv.phases, sv.t_end)
    _judge_contention(res.phases, sv.hosts, spec.threads)
    child = sv.child
    if child is not None:
        res.runtime = child.get("runtime") or {}
        res.samples = sv.samples
        res.message = child.get("message")
        res.status = child.get("status", "error")
        res.stopping = child.get("stopping")
        res.input_shapes = child.get("input_shapes") or {}
        res.artifact_sha256 = child.get("artifact_sha256")
        if child.get("raw"):
            from agents.summary import build_metrics  # statistics load after the runs: not resident while measuring

            res.metrics = build_metrics(child["raw"], sv.samples, spec.confidence)
            res.os_peak_rss_equals = "peak_rss_inference_mib" if child["raw"].get("hwm_reset") else "peak_rss_mib"
            alt = child.get("alternate")
            if spec.alternate is not None and isinstance(alt, dict):  # the second model's figures, same code
                res.os_peak_rss_equals = None  # both models' process: neither's peak
                res.alternate = {"artifact_sha256": alt.get("artifact_sha256"), "runtime": alt.get("runtime") or {},
                                 "input_shapes": alt.get("input_shapes") or {}, "samples": sv.alternate_samples or {},
                                 "metrics": build_metrics(alt.get("raw") or {}, sv.alternate_samples or {},
                                                          spec.confidence)}
    capped = spec.rlimit_as_mib is not None
    cap = " under rlimit_as_mib=%g" % spec.rlimit_as_mib if spec.rlimit_as_mib is not None else ""
    tail, status = sv.stderr_tail, sv.status
    last = _last_lines(tail)
    why = ": " + last if last else ""
    if sv.timed_out:
        res.status = "timeout"
        res.message = "model process did not finish within timeout_s=%g s; its process group was killed" % (
            spec.timeout_s)
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        res.signal = sig
        name = _signame(sig)
        if child is not None and res.status == "ok":  # the measurement is complete; say what followed
            res.message = "model process died of signal %d (%s) after reporting its result%s" % (sig, name, why)
        elif (sig == signal.SIGKILL and (capped or cg_oom)) or looks_like_oom(tail):
            res.status = "oom"
            res.message = "out of memory%s: model process died of %s%s%s" % (
                cap, name, " (the memory cgroup counted an OOM kill)" if cg_oom else "", why)
        else:
            res.status = "crashed"
            res.message = "model process died of signal %d (%s)%s" % (sig, name, why)
    elif child is None:
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        res.status = "oom" if looks_like_oom(tail) else "error"
        res.message = "%smodel process exited %d without a result%s" % (
            "out of memory%s: " % cap if res.status == "oom" else "", code, why)
    elif res.status == "error" and (looks_like_oom(res.message or "") or (capped and looks_like_oom(tail))):
        res.status = "oom"
        said = [ln.strip() for ln in tail.splitlines() if looks_like_oom(ln)]
        res.message = "out of memory%s: %s%s" % (cap, res.message, " (runtime log: %s)" % said[-1][-300:]
                                                 if said and said[-1] not in (res.message or "") else "")
    if res.status == "error" and not res.message:
        res.message = last or "unknown error"


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


_REASON_WORDS = ("assert", "error", "terminate called", "what()", "failed", "abort", "exception", "killed")


def _last_lines(text: str, n: int = 2) -> str:
    """The stderr lines that say why (assertions, errors), else the last lines; for messages."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    telling = [ln for ln in lines if any(w in ln.lower() for w in _REASON_WORDS) and not ln.startswith("#")]
    # /tmp/pip-wheel-x/vendor/llama.cpp/src/llama-vocab.cpp:2544: -> llama-vocab.cpp:2544:
    return " | ".join(re.sub(r"(?:/[^\s/:]+)+/([^\s/:]+:\d+)", r"\1", ln) for ln in (telling or lines)[-n:])[-600:]


def _judge_contention(phases: List[Json], hosts: List[Json], threads: Optional[int]) -> None:
    """Mark the measure phase `contended` (agents.contention decides) with the reason, or None."""
    for i, ph in enumerate(phases):
        if ph.get("name") != "measure" or i + 1 >= len(hosts):
            continue
        t0, t1 = ph.get("t_start"), ph.get("t_end")
        if isinstance(t0, float) and isinstance(t1, float):
            ph["contended"] = contention.judge(t1 - t0, ph.get("cpu_s"), threads, hosts[i], hosts[i + 1])


def _phase_list(events: List[Json], t_end: float) -> List[Json]:
    """Phases that started, with monotonic start/end and the model process's CPU seconds in each.

    cpu_s well below (t_end - t_start) x threads means the model process was starved of CPU.
    """
    out: List[Json] = []
    for i, ev in enumerate(events):
        if ev.get("phase") == "done":
            break
        nxt = events[i + 1] if i + 1 < len(events) else None
        entry: Json = {"name": ev.get("phase"), "t_start": ev.get("t"), "t_end": nxt["t"] if nxt else t_end,
                       "cpu_s": None}
        if nxt is not None and isinstance(nxt.get("cpu"), float) and isinstance(ev.get("cpu"), float):
            entry["cpu_s"] = round(nxt["cpu"] - ev["cpu"], 6)
        out.append(entry)
    return out
