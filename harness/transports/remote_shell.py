"""What SSH and adb share: building a remote shell command from an argv, killing it again, splitting its
output into lines, asking df for free space, reading small files, and the facts a session opens with.

Both end in a POSIX shell on the device. Every argument is quoted on its own (shlex.quote), so no string
a profile or an artifact name supplies can become shell syntax. The command first tells us its PID on
stderr; sshd and adbd start each command as a session leader, so that PID names the whole session
(agent and model child), which is what a timeout kills.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.errors import DeviceError, RunCancelled
from harness.transports.base import PART_GLOB, STALE_PART_MIN, CommandResult, LineCallback

if TYPE_CHECKING:
    from harness.memcap import MemoryCap

log = logging.getLogger(__name__)

PID_PREFIX = b"EDGEFARM_PID="
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PID_WAIT_S = 3.0  # how long a cancel waits for a just-started command to report its PID
READ_CHUNK = 96  # paths per `grep -H`: keeps a remote command line short


def command_line(argv: list[str], env: dict[str, str] | None = None, *, wrap_sh: bool) -> str:
    """The shell line that reports its PID, runs argv (with env assignments) and exits with its status.

    wrap_sh runs it under /bin/sh whatever the login shell is (SSH users may have fish or csh).
    """
    if not argv:
        raise ValueError("empty argv")
    assigns = []
    for k, v in (env or {}).items():
        if not _ENV_NAME.match(k):
            raise ValueError(f"invalid environment variable name {k!r}")
        assigns.append(f"{k}={shlex.quote(v)}")
    cmd = " ".join([*assigns, *(shlex.quote(a) for a in argv)])
    # No `exec`: the shell stays to turn a signal death into 128+N (ssh's exit-signal is lost by paramiko).
    script = f"echo {PID_PREFIX.decode()}$$ >&2; {cmd}; exit $?"
    return f"exec /bin/sh -c {shlex.quote(script)}" if wrap_sh else script


def kill_script(pid: int) -> str:
    """TERM then KILL the session / process group led by pid, falling back to pid alone."""
    p = int(pid)
    return (
        f"for s in TERM KILL; do kill -s $s -- -{p} 2>/dev/null || kill -s $s {p} 2>/dev/null; "
        f"pkill -$s -s {p} 2>/dev/null; [ $s = TERM ] && sleep 0.5; done; true"
    )


def decode_exit(status: int) -> int:
    """A shell's 128+N (died of signal N) as -N, the way subprocess reports a signal death."""
    if 128 < status <= 128 + 64:
        return -(status - 128)
    return status


def parse_df(text: str) -> int | None:
    """Available bytes from the last data line of `df -Pk` output (POSIX format: 1024-byte blocks)."""
    for line in reversed(text.strip().splitlines()):
        parts = line.split()
        if len(parts) >= 6 and parts[1].isdigit() and parts[3].isdigit():
            return int(parts[3]) * 1024
    return None


class PidMarker:
    """Takes stderr as it arrives; finds the PID line (after anything a login script printed) and drops it."""

    _LINE = re.compile(rb"(?:^|(?<=\n))" + re.escape(PID_PREFIX) + rb"(\d+)\n")

    def __init__(self) -> None:
        self.pid: int | None = None
        self._buf = bytearray()
        self._searching = True

    def feed(self, data: bytes) -> None:
        self._buf.extend(data)
        if self._searching:
            m = self._LINE.search(self._buf)
            if m:
                self.pid = int(m.group(1))
                del self._buf[m.start(): m.end()]
                self._searching = False
            elif len(self._buf) > 1 << 16:
                self._searching = False  # never came: the command runs without a kill handle

    def stderr(self) -> str:
        return self._buf.decode("utf-8", "replace")


class LineSplitter:
    """Bytes as they arrive -> complete lines to a callback (without the newline); flush() the unterminated rest."""

    def __init__(self, callback: LineCallback | None) -> None:
        self.callback = callback
        self.data = bytearray()  # everything fed, for the CommandResult
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        self.data.extend(data)
        if self.callback is None:
            return
        self._pending.extend(data)
        while (nl := self._pending.find(b"\n")) >= 0:
            self.callback(self._pending[:nl].decode("utf-8", "replace").rstrip("\r"))
            del self._pending[: nl + 1]

    def flush(self) -> None:
        if self._pending and self.callback is not None:
            self.callback(self._pending.decode("utf-8", "replace"))
        self._pending.clear()

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def facts_script(extra: str = "") -> str:
    """Session-opening shell script ($1 python, $2 workdir, default ~/.edgefarm): makes the work dir, removes stale partial pushes
    there (ours by name, stale by age), prints key=value lines and the work dir's `df -Pk` line last."""
    return (
        'w=${2:-$HOME/.edgefarm}; mkdir -p "$w" 2>/dev/null; echo "workdir=$w"; '
        f'echo "stale_parts=$(find "$w" -maxdepth 1 -type f -name {shlex.quote(PART_GLOB)} -mmin +{STALE_PART_MIN} '
        '-print -exec rm -f {} + 2>/dev/null | wc -l | tr -d " ")"; '
        'echo "python=$(command -v "$1")"; ' + extra + 'df -Pk "$w" | tail -n 1'
    )


def parse_facts(stdout: str) -> dict[str, str]:
    """The key=value lines of facts_script's output (df's line has spaces before any '=' and is skipped)."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        k, eq, v = line.partition("=")
        if eq and k and " " not in k:
            out[k] = v
    return out


class ShellDevice:
    """What a transport that reaches its device through a POSIX shell gets from `run` alone.

    Subclasses provide name and run(); they get free space, the no-space error, file reading for device state
    (one `grep -H` round trip for many files), and cancel() of every command in flight.
    """

    name: str
    memory_cap: MemoryCap | None = None  # caps are applied on this machine only (harness/memcap.py)

    def __init__(self) -> None:
        self._inflight: dict[int, PidMarker] = {}
        self._orphans: set[int] = set()  # PIDs of commands whose connection was lost while they ran
        self._inflight_lock = threading.Lock()
        self._cancelled = threading.Event()
        self._cancel_at = 0.0

    def run(self, argv: list[str], *, timeout: float, on_stdout_line: LineCallback | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        raise NotImplementedError

    # -- commands in flight, and stopping them ------------------------------------------------------------------

    def _started(self, marker: PidMarker) -> int:
        with self._inflight_lock:  # under the lock: a cancel() either sees this command or refuses it
            if self._cancelled.is_set():
                raise RunCancelled(self.name, "the run was cancelled; no new command is started")
            key = id(marker)
            self._inflight[key] = marker
            return key

    def _finished(self, key: int, lost: bool = False) -> None:
        """A command ended; lost: its connection died with it, so it may still run on the device."""
        with self._inflight_lock:
            marker = self._inflight.pop(key, None)
            if lost and marker is not None and marker.pid is not None:
                self._orphans.add(marker.pid)

    def _kill_remote(self, pid: int, timeout: float) -> bool:
        """Kill one remote session (subclasses: through a second channel); True when the kill ran."""
        raise NotImplementedError

    def cancel(self, timeout: float = 15.0) -> bool:
        """Stop every command this transport started (the agent's session: agent and model process groups).

        Commands in flight return at once with cancelled=True, later run() calls raise RunCancelled. The kills
        run on daemon threads and are waited for at most `timeout` seconds, so a dead link cannot block a
        signal handler; True when every kill was confirmed, False when some device could not be told.
        """
        with self._inflight_lock:
            self._cancel_at = time.monotonic()
            self._cancelled.set()
        # A command cancelled as it starts has not told its PID yet; its reader keeps reading until it does.
        wait_until = time.monotonic() + min(PID_WAIT_S, timeout / 3)
        while time.monotonic() < wait_until:
            with self._inflight_lock:
                if all(m.pid is not None for m in self._inflight.values()):
                    break
            time.sleep(0.02)
        with self._inflight_lock:
            pids = sorted({m.pid for m in self._inflight.values() if m.pid is not None} | self._orphans)
        if not pids:
            return True
        done: list[bool] = []
        deadline = time.monotonic() + timeout

        def kill(pid: int) -> None:
            try:
                done.append(self._kill_remote(pid, max(1.0, deadline - time.monotonic())))
            except Exception as e:  # noqa: BLE001 - a cancel never raises; it says it could not confirm
                log.warning("device '%s': could not stop remote process %s: %s", self.name, pid, e)
                done.append(False)

        threads = [threading.Thread(target=kill, args=(p,), daemon=True, name=f"cancel-{self.name}") for p in pids]
        for th in threads:
            th.start()
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
        return len(done) == len(pids) and all(done)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def stop_reading(self, marker: PidMarker) -> bool:
        """Whether a command's reader should return as cancelled: once its PID is known (so cancel() can kill
        it), or when it never tells one."""
        if not self._cancelled.is_set():
            return False
        return marker.pid is not None or time.monotonic() - self._cancel_at > PID_WAIT_S

    # -- files and storage --------------------------------------------------------------------------------------

    def free_bytes(self, path: str) -> int | None:
        """Free bytes on the filesystem holding path (df), None where df says nothing useful."""
        res = self.run(["df", "-Pk", path], timeout=30)
        return parse_df(res.stdout) if res.exit_code == 0 else None

    def no_space(self, local: str, remote: str, size: int, free: int) -> DeviceError:
        name = local.rsplit("/", 1)[-1]
        return DeviceError(self.name, f"no space left on device for {name} at {remote}: need {size} bytes, "
                                      f"{free} free", hint="free space on the device")

    def failed_push(self, local: str, remote: str, size: int, err: DeviceError) -> DeviceError:
        """A push that failed on a live link: say 'no space' when df shows that was the reason, else err."""
        parent = remote.rsplit("/", 1)[0] or "."
        free = self.free_bytes(parent)
        return self.no_space(local, remote, size, free) if free is not None and free < size else err

    def read_files(self, paths: Sequence[str]) -> dict[str, str]:
        """First line of each readable file, by path, in one round trip; unreadable or missing files are absent."""
        out: dict[str, str] = {}
        for i in range(0, len(paths), READ_CHUNK):
            chunk = list(paths[i:i + READ_CHUNK])
            res = self.run(["grep", "-H", "^", *chunk], timeout=30)
            out.update(parse_grep_h(res.stdout, chunk))
        return out

    def list_dir(self, directory: str) -> list[str] | None:
        """Entry names of a directory, None when it does not exist or cannot be read."""
        res = self.run(["ls", "-1", directory], timeout=30)
        if res.exit_code != 0:
            return None
        return sorted(line.strip() for line in res.stdout.splitlines() if line.strip())




def parse_grep_h(stdout: str, paths: Sequence[str]) -> dict[str, str]:
    """`grep -H ^ FILE...` output into {path: first line}; paths may themselves hold ':' (intel-rapl:0).

    toybox (Android), busybox and GNU grep all print `path:line`.
    """
    out: dict[str, str] = {}
    by_len = sorted(paths, key=len, reverse=True)  # the longest matching prefix wins
    for line in stdout.splitlines():
        for p in by_len:
            if line.startswith(p + ":"):
                out.setdefault(p, line[len(p) + 1:].strip())
                break
    return out

