"""Emulate a low-RAM device on the local machine: a memory cap on the agent's process tree.

A cgroup memory limit where one is writable (v1 `memory.limit_in_bytes`, v2 `memory.max`); over it the
kernel OOM-kills the model process and the cgroup's counters say so. Where no cgroup is writable,
RLIMIT_AS is the fallback: the agent applies it to its model child (allocations then fail cleanly).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
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

    def usage_bytes(self) -> int | None:
        """The group's current charge (v1 usage_in_bytes, v2 memory.current)."""
        if not self.cgroup:
            return None
        name = "memory.usage_in_bytes" if self.kind == "cgroup-v1" else "memory.current"
        try:
            return int((self.cgroup / name).read_text())
        except (OSError, ValueError):
            return None

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


def evict_from_page_cache(path: str) -> bool:
    """Evict a file's pages from the page cache so the next reader (the capped model process) is charged.

    Pages cached by the controller's hash pass or the staging copy belong to the controller's cgroup; a model
    that mmaps them would not be charged for them and a cap would not count its weights. Dirty pages cannot be
    dropped, hence the fsync first. False where the file cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            os.fsync(fd)
        except OSError:
            pass
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    finally:
        os.close(fd)


# Runtimes that mmap the model file (llama.cpp, LiteRT) instead of reading it into their own memory (onnxruntime).
MMAPPED_FORMATS = frozenset({"gguf", "tflite"})

# Runs in a helper process: waits for a line on stdin (sent once it is in the capped group), maps the file and
# mlocks all of it, prints "locked BYTES", and holds it until stdin closes. Only then is it shielded from the
# OOM killer: weights that do not fit get the helper itself killed by the kernel, before the model runs.
_PIN = r"""
import ctypes, os, sys
path = sys.argv[1]
sys.stdin.readline()
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
addr = libc.mmap(None, size, 1, 1, fd, 0) if size else None
if size and (not addr or addr == ctypes.c_void_p(-1).value):
    print("error mmap: " + os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)
if size and libc.mlock(addr, size) != 0:
    print("error mlock: " + os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)
try:
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write("-1000")  # from now on the model process is the OOM victim, not the weights' holder
except OSError:
    pass
print("locked %d" % size, flush=True)
sys.stdin.read()
"""


class WeightPin:
    """The model file's pages, locked in memory inside the capped group for the length of one run.

    A kernel reclaims clean file pages under a cgroup limit, so an mmapped model bigger than the cap would
    thrash (re-read its weights from disk for minutes) and end `ok`: not what a device with that little RAM
    does. Locked by a helper process in the group, the weights are charged to the cap and cannot be evicted:
    weights that do not fit get the helper OOM-killed by the kernel (`killed`), and weights + working memory
    that do not fit get the model process OOM-killed during the run.
    """

    def __init__(self, cap: MemoryCap, path: str) -> None:
        self.cap, self.path = cap, path
        self.locked_bytes = 0
        self.error: str | None = None
        self.killed = False  # the kernel OOM-killed the helper while it made the weights resident
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        procs = self.cap.procs_file()
        if procs is None:
            return
        before = self.cap.oom_kills()
        self.proc = subprocess.Popen([sys.executable, "-c", _PIN, self.path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            # Joined after start-up, so the interpreter's own memory stays charged where it was.
            Path(procs).write_text(str(self.proc.pid))
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline().strip()
        except OSError as e:
            line = f"error {e.strerror}"
        if line.startswith("locked "):
            self.locked_bytes = int(line.split()[1])
            return
        self.stop()
        self.killed = self.cap.oom_kills() > before
        self.error = line or ("OOM-killed while locking the weights" if self.killed else "the helper exited")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


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
