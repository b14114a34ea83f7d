"""The transport interface: how the controller acts on a device. Profiles describe; transports act.

Commands are argument lists, never shell strings built from parts; an implementation that must go
through a remote shell (ssh, adb) quotes each argument itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from harness.memcap import MemoryCap

# A push writes `.<name>.part-XXXXXXXX` beside its target and renames it; one that died midway leaves it.
# Older than this it is nobody's transfer in progress (a live push writes every second), so a session removes it.
STALE_PART_MIN = 10
PART_GLOB = ".*.part-*"


@dataclass
class CommandResult:
    argv: list[str]
    exit_code: int  # negative: killed by that signal (local), as subprocess reports it
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    cancelled: bool = False  # stopped by Transport.cancel() (SIGINT/SIGTERM), not by its own end or timeout


@dataclass
class PushStats:
    """What a content-addressed push did: bytes actually sent (0 when already present)."""

    remote_path: str
    bytes_sent: int
    skipped: bool
    seconds: float


@dataclass
class DeviceFacts:
    """What a transport can learn about a device without the agent."""

    reachable: bool
    python: str | None = None  # path of a usable python3 on the device
    workdir: str = ""  # where edgefarm keeps its files on the device
    free_storage_bytes: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


LineCallback = Callable[[str], None]


@runtime_checkable
class Transport(Protocol):
    """Run, push, pull on one device. Every failure raises DeviceError naming the device and the command."""

    name: str  # the device (profile) name, for messages
    memory_cap: MemoryCap | None  # a cap the transport puts its commands under (local only today), else None

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        on_stdout_line: LineCallback | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        """Run argv on the device; stream stdout lines to the callback as they arrive.

        A timeout kills the remote process group and returns timed_out=True; a dropped
        connection raises DeviceLost.
        """
        ...

    def push(self, local_path: str, remote_path: str, *, progress: Callable[[int, int], None] | None = None) -> None:
        """Copy a file to the device (atomically: written beside, then renamed)."""
        ...

    def pull(self, remote_path: str, local_path: str) -> None:
        """Copy a file from the device."""
        ...

    def facts(self) -> DeviceFacts:
        """Reachability, python, work dir, free storage; opening a session, it removes stale partial pushes."""
        ...

    def read_files(self, paths: Sequence[str]) -> dict[str, str]:
        """First line of each readable file (sysfs, procfs), by path; unreadable or missing files are absent."""
        ...

    def list_dir(self, directory: str) -> list[str] | None:
        """Entry names of a directory on the device, None when it does not exist or cannot be read."""
        ...

    def cancel(self, timeout: float = 15.0) -> bool:
        """Stop everything this transport started on the device (the agent's and model's process groups).

        Returns within about `timeout` seconds even when the link is dead; commands in flight return with
        cancelled=True and later run() calls raise RunCancelled. True when every stop was confirmed.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
