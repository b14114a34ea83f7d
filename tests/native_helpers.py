"""Shared pieces of the native-flavour tests: the shells the sh agent must run under, the llama.cpp tools
built by ci/build_llama_tools.sh, and a PATH on which any attempt to start Python is recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
AGENT_SH = ROOT / "agents" / "native" / "agent.sh"
SHELLS = {"dash": ["dash"], "busybox-ash": ["busybox", "ash"], "mksh": ["mksh"]}


def shell_argv(name: str) -> list[str]:
    argv = SHELLS[name]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed (ci/setup.sh --test installs dash, busybox and mksh)")
    return argv


def llama_tools(arch: str = "host") -> Path:
    """bin/ of the cached llama.cpp tools for arch ($EDGEFARM_LLAMA_TOOLS_HOST / _AARCH64 to point elsewhere);
    skip naming the command that builds them when absent."""
    given = os.environ.get("EDGEFARM_LLAMA_TOOLS_" + arch.upper())
    if given:
        return Path(given)
    cache = Path(os.environ.get("EDGEFARM_CACHE", Path.home() / ".cache" / "edgefarm")) / "llama-tools"
    found = sorted(cache.glob(f"*-{arch}-*/bin/llama-bench")) if cache.is_dir() else []
    if not found:
        pytest.skip(f"llama-bench ({arch}) is not built: run `ci/build_llama_tools.sh{'' if arch == 'host' else ' ' + arch}`"
                    " (ci/setup.sh --test does)")
    return found[-1].parent


def arm_python() -> Path:
    """bin/python3 of the cached aarch64 Python under qemu-user ($EDGEFARM_ARM_PYTHON to point elsewhere); skip
    when qemu-user is missing, or naming the command that builds it when it is not built."""
    if shutil.which("qemu-aarch64-static") is None and shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-user is not installed (apt-get install qemu-user-static; ci/setup.sh --test does)")
    given = os.environ.get("EDGEFARM_ARM_PYTHON")
    if given:
        return Path(given)
    cache = Path(os.environ.get("EDGEFARM_CACHE", Path.home() / ".cache" / "edgefarm")) / "arm-python"
    found = sorted(cache.glob("*/bin/python3"), key=lambda p: p.parent.parent.stat().st_mtime) if cache.is_dir() else []
    if not found:
        pytest.skip("the aarch64 Python is not built: run `ci/build_arm_python.sh` (ci/setup.sh --test does)")
    return found[-1]  # the newest build


def no_python_path(tmp: Path) -> tuple[str, Path]:
    """A PATH holding the usual system directories minus any Python, with `python`/`python3` traps first.

    A trap records its argv in the returned marker file and exits 127, so a test can fail if anything tried
    to start Python on the "device"."""
    traps = tmp / "no-python-bin"
    traps.mkdir(parents=True, exist_ok=True)
    marker = tmp / "python-was-called"
    for name in ("python", "python3", "python3.11", "python3.12"):
        p = traps / name
        p.write_text(f"#!/bin/sh\necho \"$0 $*\" >> '{marker}'\nexit 127\n")
        p.chmod(0o755)
    dirs = [str(traps)] + [d for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
                           if not any(Path(d, n).exists() and "venv" in str(Path(d, n).resolve())
                                      for n in ("python3",))]
    return ":".join(dirs), marker


def run_agent(shell: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> list[dict[str, Any]]:
    """Run agent.sh under a shell; its JSON events (every stdout line must be one)."""
    r = subprocess.run([*shell_argv(shell), str(AGENT_SH), *args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    events = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert r.returncode in (0, 2), r.stderr
    return events


def by_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == kind]
