"""Reading small kernel files (sysfs) on this machine directly, or on a device through its transport.

Through a transport, several files are read by its read_files (a remote one: one `grep -H ^ FILE...` round
trip per poll, see transports/remote_shell.py); a missing or unreadable file only leaves its value out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from harness.transports.base import Transport
from harness.transports.local import list_local_dir, read_local_files


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
        return read_local_files(paths)

    def listdir(self, directory: str) -> list[str] | None:
        return list_local_dir(directory)

    def denied(self, path: str) -> bool:
        return os.path.exists(path) and not os.access(path, os.R_OK)


class TransportFiles:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.where = f"device '{transport.name}'"

    def read(self, paths: Sequence[str]) -> dict[str, str]:
        return self.transport.read_files(paths) if paths else {}

    def listdir(self, directory: str) -> list[str] | None:
        return self.transport.list_dir(directory)

    def denied(self, path: str) -> bool:
        res = self.transport.run(["cat", path], timeout=10.0)
        return res.exit_code != 0 and "denied" in res.stderr.lower()

