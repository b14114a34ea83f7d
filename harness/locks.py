"""One run per device at a time, across processes: a local run and a nightly job never share a phone."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_dir() -> Path:
    d = Path(os.environ.get("EDGEFARM_LOCK_DIR") or Path.home() / ".cache" / "edgefarm" / "locks")
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def device_lock(device: str, *, on_wait: Callable[[str], None] | None = None,
                timeout_s: float | None = None, stop: threading.Event | None = None) -> Iterator[None]:
    """Hold the device's lock (flock on a file); wait, saying who holds it, when it is taken.

    Waiting ends with TimeoutError after `timeout_s`, or at once when `stop` is set (the run was interrupted).
    """
    from harness.history.lease import db_device_lease  # with a PostgreSQL store, a lease shared by all hosts

    if (lease := db_device_lease(device, on_wait=on_wait, timeout_s=timeout_s)) is not None:
        with lease:
            yield
        return
    path = lock_dir() / f"{device}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            if on_wait:
                on_wait(f"device '{device}' is in use by {holder}; waiting")
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"device '{device}' still in use by {holder}") from None
                    if stop is not None and stop.wait(0.5):
                        raise TimeoutError(f"stopped while waiting for device '{device}' (in use by {holder})")
                    if stop is None:
                        time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
