"""Process and port helpers the stand-ins share."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

# The adb server probes 5554-5585 for emulators: a stand-in device never listens there.
ADB_EMULATOR_PORTS = range(5554, 5586)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice), never in adb's emulator range."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in ADB_EMULATOR_PORTS:
            return port


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process and everything below it, including children that setsid() away from its group."""
    for p in descendants(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def dies_with_parent(argv: list[str]) -> list[str]:
    """argv that is SIGKILLed when the thread starting it dies (a killed test run leaves no daemons behind).

    Call from a long-lived thread: the kernel's parent-death signal follows the creating thread.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


def running(pid: int) -> bool:
    """Whether pid exists and is not a zombie (a zombie runs nothing; its parent just has not reaped it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pids: Iterable[int], within_s: float = 10.0) -> bool:
    """Whether every pid has stopped running within within_s (polled, for tests and drills)."""
    todo = list(pids)
    deadline = time.monotonic() + within_s
    while True:
        todo = [p for p in todo if running(p)]
        if not todo or time.monotonic() >= deadline:
            return not todo
        time.sleep(0.05)
