"""Device leases through a PostgreSQL store: one controller drives a device at a time, across farm hosts.

A lease is a row (device, holder, token, expires_at) whose expiry the holder pushes forward every TTL/3 from a
heartbeat thread. Expiry is in the database server's clock, so hosts' clocks need not agree. A holder that dies
(kill -9, power loss, a network that went away) stops renewing and its lease lapses after TTL; a waiter then
takes it. With a SQLite store (or none) devices keep the per-host file locks of harness/locks.py.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from harness.errors import DeviceError, UserError
from harness.history.db import Connection, StoreUrl, configured_url, connect
from harness.records import now_rfc3339

TTL_ENV = "EDGEFARM_LEASE_TTL"
DEFAULT_TTL_S = 30.0
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"


def lease_ttl() -> float:
    text = os.environ.get(TTL_ENV)
    if not text:
        return DEFAULT_TTL_S
    try:
        ttl = float(text)
    except ValueError:
        ttl = -1.0
    if not 1.0 <= ttl <= 3600.0:
        raise UserError(f"{TTL_ENV}={text!r}: expected seconds between 1 and 3600")
    return ttl


def holder_name() -> str:
    return f"pid {os.getpid()} on {os.uname().nodename}"


class Lease:
    """One held lease; renew() from the heartbeat, release() when done."""

    def __init__(self, conn: Connection, device: str, ttl_s: float) -> None:
        self.conn, self.device, self.ttl_s = conn, device, ttl_s
        self.token = uuid.uuid4().hex
        self.lost: str | None = None

    def try_acquire(self) -> tuple[bool, str, float]:
        """(acquired, current holder, seconds until its lease lapses)."""
        row = self.conn.execute(
            "INSERT INTO leases (device, holder, token, acquired_at, expires_at) "
            f"VALUES (?, ?, ?, ?, {_NOW} + ?) ON CONFLICT (device) DO UPDATE SET holder = excluded.holder, "
            "token = excluded.token, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at "
            f"WHERE leases.expires_at < {_NOW} RETURNING token",
            (self.device, holder_name(), self.token, now_rfc3339(), self.ttl_s)).fetchone()
        if row is not None:
            return True, holder_name(), self.ttl_s
        cur = self.conn.execute(f"SELECT holder, expires_at - {_NOW} FROM leases WHERE device = ?",
                                (self.device,)).fetchone()
        if cur is None:  # released between our two statements: try again at once
            return self.try_acquire()
        return False, str(cur[0]), float(cur[1])

    def renew(self) -> bool:
        n = self.conn.execute(f"UPDATE leases SET expires_at = {_NOW} + ? WHERE device = ? AND token = ?",
                              (self.ttl_s, self.device, self.token)).rowcount
        return n == 1

    def release(self) -> None:
        self.conn.execute("DELETE FROM leases WHERE device = ? AND token = ?", (self.device, self.token))


def _heartbeat(lease: Lease, stop: threading.Event) -> None:
    while not stop.wait(lease.ttl_s / 3):
        try:
            ok = lease.renew()
        except Exception as e:  # the server went away: keep trying until the lease would have lapsed
            print(f"edgefarm: warning: device '{lease.device}': cannot renew its lease: {e}", file=sys.stderr)
            continue
        if not ok:
            lease.lost = "its lease lapsed and another controller took the device"
            print(f"edgefarm: warning: device '{lease.device}': {lease.lost}", file=sys.stderr)
            return


@contextmanager
def hold_lease(url: StoreUrl, device: str, *, on_wait: Callable[[str], None] | None = None,
               timeout_s: float | None = None, ttl_s: float | None = None) -> Iterator[None]:
    """Hold the device's lease; wait (saying who holds it) while another controller does."""
    if on_wait is None:  # say it anyway, past pytest's capture: a silent wait looks like a hang
        def on_wait(msg: str) -> None:
            print(f"edgefarm: {msg}", file=sys.__stderr__, flush=True)
    conn = connect(url)
    lease = Lease(conn, device, ttl_s or lease_ttl())
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        told = ""
        while True:
            ok, holder, left = lease.try_acquire()
            if ok:
                break
            if holder != told:
                on_wait(f"device '{device}' is leased by {holder} (lapses in {max(left, 0):.0f} s unless renewed); "
                        "waiting")
                told = holder
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"device '{device}' still leased by {holder}")
            time.sleep(0.5)
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(lease, stop), name=f"lease-{device}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            if lease.lost is None:
                lease.release()
        if lease.lost is not None:
            # The figures were measured while another controller may have driven the device too.
            raise DeviceError(device, lease.lost, hint="raise EDGEFARM_LEASE_TTL or check the store's reachability")
    finally:
        conn.close()


def db_device_lease(device: str, *, on_wait: Callable[[str], None] | None = None,
                    timeout_s: float | None = None) -> AbstractContextManager[None] | None:
    """The store's lease for a device when the store is PostgreSQL; None means: use the file lock."""
    url = configured_url()
    if url is None or url.engine != "postgresql":
        return None
    return hold_lease(url, device, on_wait=on_wait, timeout_s=timeout_s)
