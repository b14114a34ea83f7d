"""What SSH and adb share: building a remote shell command from an argv, and killing it again.

Both end in a POSIX shell on the device. Every argument is quoted on its own (shlex.quote), so no string
a profile or an artifact name supplies can become shell syntax. The command first tells us its PID on
stderr; sshd and adbd start each command as a session leader, so that PID names the whole session
(agent and model child), which is what a timeout kills.
"""

from __future__ import annotations

import re
import shlex

PID_PREFIX = b"EDGEFARM_PID="
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
