"""The ADB transport protocol, device side: packets, streams and their flow control.

Header `<6I`: command, arg0, arg1, data length, data checksum (0: hosts of version 0x01000001 do not check
it), magic = command ^ 0xffffffff. A stream is opened by the host (OPEN), answered with OKAY, and carries
WRTEs each acknowledged by an OKAY before the next one (no delayed_ack feature), until a CLSE.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_WRTE, A_CLSE = 0x4E584E43, 0x48545541, 0x4E45504F, 0x59414B4F, 0x45545257, 0x45534C43
VERSION = 0x01000001
MAX_PAYLOAD = 1 << 20
HIGH_WATER = 4 << 20  # stop acknowledging the host's writes while this much input waits unread
_HEADER = struct.Struct("<6I")


class Services(Protocol):
    """What a device offers on a connection: its banner, and a handler for each service a host opens."""

    def banner(self) -> str: ...

    def service(self, name: str, stream: Stream) -> Callable[[], None] | None: ...


class StreamClosed(Exception):
    """The host closed the stream (or the connection dropped)."""


class Stream:
    """One adb stream: buffered input from the host's WRTEs, flow-controlled output as our WRTEs."""

    def __init__(self, conn: Connection, local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self._cv = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._ack_pending = False
        self._can_send = True
        self._write_lock = threading.Lock()
        self.closed = False
        self.on_remote_close: Callable[[], None] | None = None

    # input -------------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        with self._cv:
            self._chunks.append(data)
            self._size += len(data)
            ack = self._size < HIGH_WATER
            self._ack_pending = not ack
            self._cv.notify_all()
        if ack:
            self.conn.send(A_OKAY, self.local_id, self.remote_id)

    def _consumed(self) -> None:
        if self._ack_pending and self._size < HIGH_WATER:
            self._ack_pending = False
            self.conn.send(A_OKAY, self.local_id, self.remote_id)

    def read_some(self) -> bytes:
        """The next chunk the host wrote; b'' once the host closed the stream."""
        with self._cv:
            while not self._chunks and not self._eof:
                self._cv.wait()
            if not self._chunks:
                return b""
            data = self._chunks.popleft()
            self._size -= len(data)
            self._consumed()
            return data

    def read_exact(self, n: int) -> bytes:
        parts: list[bytes] = []
        need = n
        with self._cv:
            while need:
                while not self._chunks and not self._eof:
                    self._cv.wait()
                if not self._chunks:
                    raise StreamClosed()
                head = self._chunks[0]
                if len(head) <= need:
                    self._chunks.popleft()
                    parts.append(head)
                    need -= len(head)
                    self._size -= len(head)
                else:
                    parts.append(head[:need])
                    self._chunks[0] = head[need:]
                    self._size -= need
                    need = 0
            self._consumed()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # output ------------------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send data as WRTEs, each waiting for the host's OKAY of the one before."""
        with self._write_lock:
            view = memoryview(data)
            for off in range(0, len(data), self.conn.max_payload):
                with self._cv:
                    while not self._can_send and not self.closed:
                        self._cv.wait()
                    if self.closed:
                        raise StreamClosed()
                    self._can_send = False
                self.conn.send(A_WRTE, self.local_id, self.remote_id, view[off: off + self.conn.max_payload])

    def acked(self) -> None:
        with self._cv:
            self._can_send = True
            self._cv.notify_all()

    # closing -----------------------------------------------------------------------------------------------
    def remote_closed(self) -> None:
        with self._cv:
            already = self.closed
            self._eof = self.closed = True
            self._cv.notify_all()
        if not already and self.on_remote_close is not None:
            self.on_remote_close()

    def close(self) -> None:
        with self._cv:
            if self.closed:
                return
            self.closed = self._eof = True
            self._cv.notify_all()
        self.conn.forget(self.local_id)
        self.conn.send(A_CLSE, self.local_id, self.remote_id)


class Connection:
    """One host (adb server) connected to this device."""

    _ids = itertools.count(1)

    def __init__(self, sock: socket.socket, daemon: Services) -> None:
        self.sock, self.daemon = sock, daemon
        self.max_payload = 4096
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._lock = threading.Lock()

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes | memoryview = b"") -> None:
        header = _HEADER.pack(cmd, arg0, arg1, len(data), 0, cmd ^ 0xFFFFFFFF)
        try:
            with self._send_lock:
                self.sock.sendall(header)
                if data:
                    self.sock.sendall(data)
        except OSError:
            pass  # the reader notices the dead socket and closes every stream

    def forget(self, local_id: int) -> None:
        with self._lock:
            self._streams.pop(local_id, None)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ConnectionError("host closed the connection")
            got += k
        return bytes(buf)

    def serve(self) -> None:
        try:
            while True:
                cmd, arg0, arg1, length, _crc, _magic = _HEADER.unpack(self._recv_exact(_HEADER.size))
                data = self._recv_exact(length) if length else b""
                self._dispatch(cmd, arg0, arg1, data)
        except (ConnectionError, OSError):
            pass
        finally:
            with self._lock:
                streams = list(self._streams.values())
                self._streams.clear()
            for s in streams:
                s.remote_closed()
            self.sock.close()

    def _dispatch(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            self.max_payload = max(4096, min(arg1, MAX_PAYLOAD))
            self.send(A_CNXN, VERSION, MAX_PAYLOAD, self.daemon.banner().encode())
        elif cmd == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            local_id = next(self._ids)
            stream = Stream(self, local_id, arg0)
            handler = self.daemon.service(service, stream)
            if handler is None:
                self.send(A_CLSE, 0, arg0)
                return
            with self._lock:
                self._streams[local_id] = stream
            self.send(A_OKAY, local_id, arg0)
            threading.Thread(target=_run_service, args=(handler, stream), daemon=True,
                             name=f"adbd-{service[:20]}").start()
        else:
            with self._lock:
                known = self._streams.get(arg1)
            if known is None:
                return
            if cmd == A_WRTE:
                known.feed(data)
            elif cmd == A_OKAY:
                known.acked()
            elif cmd == A_CLSE:
                self.forget(arg1)
                known.remote_closed()
        # AUTH is never asked for over TCP; anything else is ignored as the real adbd does


def _run_service(handler: Callable[[], None], stream: Stream) -> None:
    try:
        handler()
    except StreamClosed:
        pass
    finally:
        stream.close()
