"""Reading small kernel files (sysfs) on this machine directly, or on a device through its transport.

Through a transport, several files are read with one command, `grep -H ^ FILE...`, whose `path:line` output
toybox (Android), busybox and GNU grep all print: one round trip per poll, and a missing or unreadable file
only leaves its value out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from harness.transports.base import Transport


class FileReader(Protocol):
    where: str  # for messages: "this machine" or the device name

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        """First line of each readable file, by path; unreadable or missing files are absent."""
        ...

    def listdir(self, directory: str) -> list[str] | None:
        """Entry names of a directory, or None when it does not exist."""
        ...

    def denied(self, path: str) -> bool:
        """Whether a file exists but may not be read (RAPL on kernels >= 5.10 without root)."""
        ...


class LocalFiles:
    where = "this machine"

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for p in paths:
            try:
                with open(p, encoding="ascii", errors="replace") as fh:
                    out[p] = fh.readline().strip()
            except OSError:
                continue
        return out

    def listdir(self, directory: str) -> list[str] | None:
        try:
            return sorted(os.listdir(directory))
        except OSError:
            return None

    def denied(self, path: str) -> bool:
        return os.path.exists(path) and not os.access(path, os.R_OK)


class TransportFiles:
    def __init__(self, transport: Transport, timeout_s: float = 10.0) -> None:
        self.transport, self.timeout_s = transport, timeout_s
        self.where = f"device '{transport.name}'"

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        if not paths:
            return {}
        res = self.transport.run(["grep", "-H", "^", *paths], timeout=self.timeout_s)
        return parse_grep_h(res.stdout, paths)

    def listdir(self, directory: str) -> list[str] | None:
        res = self.transport.run(["ls", "-1", directory], timeout=self.timeout_s)
        if res.exit_code != 0:
            return None
        return sorted(line.strip() for line in res.stdout.splitlines() if line.strip())

    def denied(self, path: str) -> bool:
        res = self.transport.run(["cat", path], timeout=self.timeout_s)
        return res.exit_code != 0 and "denied" in res.stderr.lower()


def parse_grep_h(stdout: str, paths: Sequence[str]) -> dict[str, str]:
    """`grep -H ^ FILE...` output into {path: first line}; paths may themselves hold ':' (intel-rapl:0)."""
    out: dict[str, str] = {}
    by_len = sorted(paths, key=len, reverse=True)  # the longest matching prefix wins
    for line in stdout.splitlines():
        for p in by_len:
            if line.startswith(p + ":"):
                out.setdefault(p, line[len(p) + 1:].strip())
                break
    return out
