"""The local transport: this machine as a device. Commands run as child processes, files are copied."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import DeviceError
from harness.memcap import MemoryCap
from harness.transports.base import CommandResult, DeviceFacts, LineCallback


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
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, bufsize=1, env=full_env, start_new_session=True, preexec_fn=self._preexec(),
            )
        except OSError as e:
            raise DeviceError(self.name, f"cannot start command: {e.strerror}", argv=argv) from None
        err_chunks: list[str] = []
        err_thread = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read() if proc.stderr else ""))
        err_thread.start()
        out_lines: list[str] = []
        timed_out = threading.Event()

        def kill_on_timeout() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

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
        return CommandResult(
            argv=argv, exit_code=proc.returncode, stdout="".join(out_lines), stderr="".join(err_chunks),
            duration_s=time.monotonic() - t0, timed_out=timed_out.is_set(),
        )

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
        free = shutil.disk_usage(self.workdir).free
        return DeviceFacts(reachable=True, python=self.python, workdir=self.workdir, free_storage_bytes=free)

    def close(self) -> None:
        if self.memory_cap:
            self.memory_cap.release()
