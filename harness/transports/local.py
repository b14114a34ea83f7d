"""The local transport: this machine as a device. Commands run as child processes, files are copied."""

from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.errors import DeviceError, RunCancelled
from harness.memcap import MemoryCap
from harness.transports.base import PART_GLOB, STALE_PART_MIN, CommandResult, DeviceFacts, LineCallback


def session_members(sid: int) -> list[int]:
    """Every process of a session (the agent leads one; the model child has its own group inside it)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # after "(comm)", which may hold spaces
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != b"Z":  # a zombie runs nothing
            out.append(int(entry))
    return out


def kill_session(sid: int, sig: int = signal.SIGKILL) -> None:
    """Signal every process group of the session led by sid (killpg alone misses the model's own group)."""
    for pid in [sid, *session_members(sid)]:
        try:
            os.killpg(os.getpgid(pid), sig)
        except (ProcessLookupError, PermissionError):
            pass


def remove_stale_parts(workdir: str, min_age_s: float = 60.0 * STALE_PART_MIN) -> int:
    """Remove partial pushes (`.<name>.part-*`) in workdir older than min_age_s; how many were removed."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(workdir))
    except OSError:
        return 0
    for e in entries:
        if not fnmatch.fnmatch(e.name, PART_GLOB):
            continue
        try:
            if e.is_file(follow_symlinks=False) and now - e.stat(follow_symlinks=False).st_mtime > min_age_s:
                os.unlink(e.path)
                removed += 1
        except OSError:
            continue
    return removed


def read_local_files(paths: Sequence[str]) -> dict[str, str]:
    """First line of each readable file on this machine, by path; unreadable or missing files are absent."""
    out: dict[str, str] = {}
    for p in paths:
        try:
            with open(p, encoding="ascii", errors="replace") as fh:
                out[p] = fh.readline().strip()
        except OSError:
            continue
    return out


def list_local_dir(directory: str) -> list[str] | None:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return None


def default_workdir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgefarm", "device")


class LocalTransport:
    """Runs on the controller's own machine; every command joins the memory cap's cgroup when there is one."""

    def __init__(self, name: str, *, workdir: str = "", python: str = "", memory_cap: MemoryCap | None = None):
        self.name = name
        self.workdir = os.path.expanduser(workdir) if workdir else default_workdir()
        # "python3" in a profile means "the interpreter edgefarm runs in" locally: it has the runtimes.
        self.python = sys.executable if python in ("", "python3") else python
        self.memory_cap = memory_cap
        self._procs: set[subprocess.Popen[str]] = set()
        self._procs_lock = threading.Lock()
        self._cancelled = threading.Event()

    def _preexec(self) -> Callable[[], None] | None:
        procs = self.memory_cap.procs_file() if self.memory_cap else None
        if procs is None:
            return None

        def join_cgroup() -> None:
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))

        return join_cgroup

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        on_stdout_line: LineCallback | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        t0 = time.monotonic()
        with self._procs_lock:  # under the lock: a cancel() either sees this process or refuses it
            if self._cancelled.is_set():
                raise RunCancelled(self.name, "the run was cancelled; no new command is started", argv=argv)
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, bufsize=1, env=full_env, start_new_session=True, preexec_fn=self._preexec(),
                )
            except OSError as e:
                raise DeviceError(self.name, f"cannot start command: {e.strerror}", argv=argv) from None
            self._procs.add(proc)
        err_chunks: list[str] = []
        err_thread = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read() if proc.stderr else ""))
        err_thread.start()
        out_lines: list[str] = []
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
            kill_session(proc.pid)

        timer = threading.Timer(timeout, kill_on_timeout)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out_lines.append(line)
                if on_stdout_line is not None:
                    on_stdout_line(line.rstrip("\n"))
            proc.wait()
        finally:
            timer.cancel()
            err_thread.join()
            with self._procs_lock:
                self._procs.discard(proc)
        return CommandResult(
            argv=argv, exit_code=proc.returncode, stdout="".join(out_lines), stderr="".join(err_chunks),
            duration_s=time.monotonic() - t0, timed_out=timed_out.is_set(),
            cancelled=self._cancelled.is_set(),
        )

    def cancel(self, timeout: float = 15.0) -> bool:
        """TERM the sessions of every command in flight, KILL what is left after a short grace; bounded."""
        with self._procs_lock:
            self._cancelled.set()
            procs = list(self._procs)
        for p in procs:
            kill_session(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + min(timeout, 2.0)
        while time.monotonic() < deadline and any(p.poll() is None or session_members(p.pid) for p in procs):
            time.sleep(0.05)  # polling the processes' own state, with a deadline
        for p in procs:
            kill_session(p.pid)
        end = time.monotonic() + max(0.0, timeout - 2.0)
        while time.monotonic() < end and any(session_members(p.pid) for p in procs):
            time.sleep(0.05)
        return not any(session_members(p.pid) for p in procs)

    def read_files(self, paths: Sequence[str]) -> dict[str, str]:
        return read_local_files(paths)

    def list_dir(self, directory: str) -> list[str] | None:
        return list_local_dir(directory)

    def push(self, local_path: str, remote_path: str, *, progress: Callable[[int, int], None] | None = None) -> None:
        dst = Path(remote_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.part-{os.getpid()}")
        size = os.path.getsize(local_path)
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, dst)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise DeviceError(self.name, f"cannot copy {local_path} to {remote_path}: {e.strerror}") from None
        if progress:
            progress(size, size)

    def pull(self, remote_path: str, local_path: str) -> None:
        try:
            shutil.copyfile(remote_path, local_path)
        except OSError as e:
            raise DeviceError(self.name, f"cannot copy {remote_path} to {local_path}: {e.strerror}") from None

    def facts(self) -> DeviceFacts:
        os.makedirs(self.workdir, exist_ok=True)
        removed = remove_stale_parts(self.workdir)
        free = shutil.disk_usage(self.workdir).free
        return DeviceFacts(reachable=True, python=self.python, workdir=self.workdir, free_storage_bytes=free,
                           extra={"stale_parts_removed": str(removed)})

    def close(self) -> None:
        if self.memory_cap:
            self.memory_cap.release()
