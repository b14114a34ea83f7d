"""Atomic file replacement: a reader never sees a half-written artifact."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_target(dst: Path) -> Iterator[Path]:
    """Yield a temporary path beside `dst`; on success it replaces `dst`, on error it is removed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(dst: Path, data: bytes) -> Path:
    """Write `data` to `dst` atomically and return `dst`."""
    with atomic_target(dst) as tmp:
        tmp.write_bytes(data)
    return dst
