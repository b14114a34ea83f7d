"""Driving the real `edgefarm` CLI in a subprocess, and seeing what it left behind (processes, locks, files)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def cli_env(tmp: Path) -> dict[str, str]:
    """An environment of its own: device work dir, locks and caches under `tmp` (so its processes are findable)."""
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    env["EDGEFARM_LOCK_DIR"] = str(tmp / "locks")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def edgefarm(tmp: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=cli_env(tmp), capture_output=True,
                          text=True, timeout=timeout)


EDGEFARM = [sys.executable, "-m", "harness.cli"]
FIXTURE_RESULTS = Path(__file__).parent / "fixtures" / "results"
FIXTURE_POLICY = FIXTURE_RESULTS / "policy.toml"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The CLI in this process's own environment."""
    return subprocess.run([*EDGEFARM, *args], capture_output=True, text=True, timeout=timeout)


def gate_fixture(run: Path, *extra: str, policy: Path = FIXTURE_POLICY) -> subprocess.CompletedProcess[str]:
    """`edgefarm gate` on a fixture run directory; the fixture result directory holds no *.toml, so no device
    profiles: only the policy's budgets apply."""
    return cli("gate", str(run), "--policy", str(policy), "--profiles", str(FIXTURE_RESULTS / "baseline"), *extra)


def start(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], env=cli_env(tmp), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(what: str, cond: Callable[[], Any], deadline_s: float, poll_s: float = 0.05) -> Any:
    """Poll until cond() is truthy; fail naming `what` after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s} s: {what}")
        time.sleep(poll_s)


def procs_mentioning(marker: str) -> list[tuple[int, str]]:
    """Processes whose command line mentions `marker` (agent and model argv name files under the work dir)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            out.append((int(d.name), cmd[:200]))
    return out


def lock_is_free(lock_dir: Path, device: str) -> bool:
    path = lock_dir / f"{device}.lock"
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def result_lines(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def manifest(out: Path) -> dict[str, Any]:
    d: dict[str, Any] = json.loads((out / "run.json").read_text())
    return d


def one_line_error(stderr: str) -> str:
    """The CLI's user error: exactly one line, no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid`, read from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out
