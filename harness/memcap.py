"""Emulate a low-RAM device on the local machine: a memory cap on the agent's process tree.

A cgroup memory limit where one is writable (v1 `memory.limit_in_bytes`, v2 `memory.max`); over it the
kernel OOM-kills the model process and the cgroup's counters say so. Where no cgroup is writable,
RLIMIT_AS is the fallback: the agent applies it to its model child (allocations then fail cleanly).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

_counter = itertools.count()


def _mounts() -> list[tuple[str, str, str]]:
    """(fstype, mount point, super options) of cgroup mounts."""
    out = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                parts, rparts = left.split(), right.split()
                if rparts and rparts[0] in ("cgroup", "cgroup2"):
                    out.append((rparts[0], parts[4], rparts[2] if len(rparts) > 2 else ""))
    except OSError:
        pass
    return out


def _candidate_parents() -> list[tuple[str, Path]]:
    own: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrl, path = line.split(":", 2)
            own[ctrl or "unified"] = path
    except OSError:
        pass
    cands: list[tuple[str, Path]] = []
    for fstype, mnt, opts in _mounts():
        if fstype == "cgroup" and "memory" in opts.split(","):
            rel = own.get("memory", "/").lstrip("/")
            cands += [("v1", Path(mnt) / rel), ("v1", Path(mnt))]
        elif fstype == "cgroup2":
            rel = own.get("unified", "/").lstrip("/")
            cands += [("v2", Path(mnt) / rel), ("v2", Path(mnt))]
    return cands


@dataclass
class MemoryCap:
    """A cap of `limit_mib`; `cgroup` is the group's directory, or None when RLIMIT_AS must be used."""

    limit_mib: int
    kind: str  # "cgroup-v1" | "cgroup-v2" | "rlimit_as"
    cgroup: Path | None = None
    notes: list[str] = field(default_factory=list)

    def procs_file(self) -> str | None:
        return str(self.cgroup / "cgroup.procs") if self.cgroup else None

    def oom_kills(self) -> int:
        """How many processes of this group the kernel has OOM-killed so far."""
        if not self.cgroup:
            return 0
        name = "memory.oom_control" if self.kind == "cgroup-v1" else "memory.events"
        try:
            for line in (self.cgroup / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def reset_peak(self) -> None:
        """Start a new peak measurement (v1: write 0 to max_usage_in_bytes; v2 >= 6.12: write to memory.peak)."""
        if not self.cgroup:
            return
        name = "memory.max_usage_in_bytes" if self.kind == "cgroup-v1" else "memory.peak"
        try:
            (self.cgroup / name).write_text("0")
        except OSError:
            pass

    def peak_mib(self) -> float | None:
        """The group's peak memory (v1 max_usage_in_bytes, v2 memory.peak)."""
        if not self.cgroup:
            return None
        name = "memory.max_usage_in_bytes" if self.kind == "cgroup-v1" else "memory.peak"
        try:
            return int((self.cgroup / name).read_text()) / 2**20
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.cgroup:
            try:
                self.cgroup.rmdir()
            except OSError:
                pass  # still has processes (killed ones are reaped shortly); the kernel frees it later


def create(limit_mib: int) -> MemoryCap:
    """Make a fresh cgroup with the limit, or fall back to RLIMIT_AS."""
    notes: list[str] = []
    for version, parent in _candidate_parents():
        group = parent / f"edgefarm-{os.getpid()}-{next(_counter)}"
        try:
            group.mkdir()
        except OSError as e:
            notes.append(f"{parent}: {e.strerror}")
            continue
        try:
            if version == "v1":
                (group / "memory.limit_in_bytes").write_text(str(limit_mib * 2**20))
                try:  # without swap accounting this file is absent; with it, swap must not dodge the cap
                    (group / "memory.memsw.limit_in_bytes").write_text(str(limit_mib * 2**20))
                except OSError:
                    pass
            else:
                (group / "memory.max").write_text(str(limit_mib * 2**20))
                try:
                    (group / "memory.swap.max").write_text("0")
                except OSError:
                    pass
            return MemoryCap(limit_mib, f"cgroup-{version}", group, notes)
        except OSError as e:
            notes.append(f"{group}: {e.strerror}")
            try:
                group.rmdir()
            except OSError:
                pass
    return MemoryCap(limit_mib, "rlimit_as", None, notes)
