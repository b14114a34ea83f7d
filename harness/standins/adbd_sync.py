"""The `sync:` service (v1) of the adbd stand-in: STAT, LIST, SEND, RECV, QUIT.

Hosts fall back to v1 when the device advertises no stat_v2 / ls_v2 / sendrecv_v2. A failed SEND reads
every chunk up to DONE, removes what it wrote, and answers FAIL with adbd's own wording.
"""

from __future__ import annotations

import os
import struct
import time
from typing import Protocol

from harness.standins.adb_wire import Stream

SYNC_DATA_MAX = 64 * 1024


class Storage(Protocol):
    quota_bytes: int | None

    def used_bytes(self) -> int: ...

    def writable(self, path: str) -> bool: ...


class SyncService:
    """`sync:` v1, as the host falls back to when the device advertises no stat_v2/ls_v2/sendrecv_v2."""

    def __init__(self, daemon: Storage, stream: Stream) -> None:
        self.d, self.s = daemon, stream

    def serve(self) -> None:
        while True:
            head = self.s.read_exact(8)
            cmd, n = head[:4], struct.unpack("<I", head[4:])[0]
            if cmd == b"QUIT":
                return
            path = self.s.read_exact(n).decode("utf-8", "surrogateescape") if n else ""
            if cmd == b"STAT":
                self._stat(path)
            elif cmd == b"LIST":
                self._list(path)
            elif cmd == b"SEND":
                self._send(path)
            elif cmd == b"RECV":
                self._recv(path)
            else:
                self._fail(f"unknown sync command {cmd!r}")
                return

    def _fail(self, message: str) -> None:
        msg = message.encode()
        self.s.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)

    def _stat(self, path: str) -> None:
        try:
            st = os.lstat(path)
            self.s.write(struct.pack("<4sIII", b"STAT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF,
                                     int(st.st_mtime)))
        except OSError:
            self.s.write(struct.pack("<4sIII", b"STAT", 0, 0, 0))

    def _list(self, path: str) -> None:
        try:
            names = [".", "..", *sorted(os.listdir(path))]
        except OSError:
            names = []
        for name in names:
            try:
                st = os.lstat(os.path.join(path, name))
            except OSError:
                continue
            raw = name.encode("utf-8", "surrogateescape")
            self.s.write(struct.pack("<4sIIII", b"DENT", st.st_mode & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF,
                                     int(st.st_mtime), len(raw)) + raw)
        self.s.write(struct.pack("<4sIIII", b"DONE", 0, 0, 0, 0))

    def _send(self, spec: str) -> None:
        path, _, mode_s = spec.rpartition(",")
        if not path:
            path, mode_s = spec, "33188"
        mode = int(mode_s) if mode_s.isdigit() else 0o100644
        error: str | None = None
        fh = None
        if not self.d.writable(path):
            error = f"couldn't create file: Permission denied ({path} is outside device storage)"
        else:
            try:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                fh = open(path, "wb")  # noqa: SIM115 - closed below whatever happens
            except OSError as e:
                error = f"couldn't create file: {e.strerror}"
        budget = None if self.d.quota_bytes is None or error else self.d.quota_bytes - self.d.used_bytes()
        written, mtime = 0, int(time.time())
        while True:  # read every chunk up to DONE even after a failure, then answer once
            head = self.s.read_exact(8)
            kind, n = head[:4], struct.unpack("<I", head[4:])[0]
            if kind == b"DONE":
                mtime = n
                break
            if kind != b"DATA" or n > SYNC_DATA_MAX:
                error = error or f"invalid data message {kind!r}"
                break
            chunk = self.s.read_exact(n)
            if error is None and fh is not None:
                written += n
                if budget is not None and written > budget:
                    error = "write failed: No space left on device"
                    continue
                try:
                    fh.write(chunk)
                except OSError as e:
                    error = f"write failed: {e.strerror}"
        if fh is not None:
            try:
                fh.close()
            except OSError as e:
                error = error or f"write failed: {e.strerror}"
        if error is not None:
            if fh is not None:
                try:
                    os.unlink(path)  # adbd leaves no half-written file behind
                except OSError:
                    pass
            self._fail(error)
            return
        os.chmod(path, mode & 0o7777)
        os.utime(path, (mtime, mtime))
        self.s.write(b"OKAY" + struct.pack("<I", 0))

    def _recv(self, path: str) -> None:
        try:
            fh = open(path, "rb")  # noqa: SIM115
        except OSError as e:
            self._fail(f"open failed: {e.strerror}")
            return
        with fh:
            while chunk := fh.read(SYNC_DATA_MAX):
                self.s.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        self.s.write(b"DONE" + struct.pack("<I", 0))
