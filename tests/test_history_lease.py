"""Device leases through a real PostgreSQL, held by separate controller processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from history_helpers import ROOT, postgres_server

# A controller: takes the lease, says HELD, holds it until a line arrives on stdin, then releases and says DONE.
HOLDER = """
import sys
from harness.history.db import parse_url
from harness.history.lease import hold_lease
with hold_lease(parse_url(sys.argv[1]), sys.argv[2], on_wait=lambda m: print("WAIT", m, flush=True),
                ttl_s=float(sys.argv[3])):
    print("HELD", flush=True)
    sys.stdin.readline()
print("DONE", flush=True)
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    yield from postgres_server()


def controller(url: str, device: str, ttl: float = 30.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, url, device, str(ttl)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def line(p: subprocess.Popen[str]) -> str:
    assert p.stdout is not None
    out = p.stdout.readline()
    assert out, f"controller exited: {p.wait(10)} {p.stderr.read() if p.stderr else ''}"
    return out.strip()


def finish(*procs: subprocess.Popen[str]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(30)


def test_two_controllers_exclude_each_other_and_the_waiter_names_the_holder(pg: Any) -> None:
    url = pg.create_db("lease_a")
    a = controller(url, "pixel7")
    try:
        assert line(a) == "HELD"
        b = controller(url, "pixel7")
        other = controller(url, "rpi5")  # another device is not blocked
        try:
            msg = line(b)
            assert msg.startswith("WAIT") and f"pid {a.pid} on " in msg and "pixel7" in msg
            assert line(other) == "HELD"
            assert a.stdin is not None
            a.stdin.write("\n")
            a.stdin.flush()
            assert line(a) == "DONE"
            assert line(b) == "HELD"  # b only holds once a has let go: a's DONE came first
        finally:
            finish(b, other)
    finally:
        finish(a)


def test_a_killed_holder_lease_lapses(pg: Any) -> None:
    url = pg.create_db("lease_b")
    a = controller(url, "pixel7", ttl=2.0)
    b: subprocess.Popen[str] | None = None
    try:
        assert line(a) == "HELD"
        b = controller(url, "pixel7", ttl=2.0)
        assert line(b).startswith("WAIT")
        os.kill(a.pid, signal.SIGKILL)  # no release, no goodbye: only the expiry frees the device
        a.wait(10)
        t0 = time.monotonic()
        assert line(b) == "HELD"
        assert time.monotonic() - t0 < 60
    finally:
        finish(a, *([b] if b else []))


def test_a_lost_lease_fails_the_holder_loudly(pg: Any) -> None:
    pytest.importorskip("psycopg")
    import psycopg

    url = pg.create_db("lease_c")
    a = controller(url, "pixel7", ttl=1.0)
    try:
        assert line(a) == "HELD"
        with psycopg.connect(url, autocommit=True) as c:  # another host steals it (as after a network partition)
            c.execute("UPDATE leases SET token = 'someone-else'")
        assert a.stdin is not None and a.stderr is not None
        deadline = time.monotonic() + 30
        err = ""
        while "another controller took the device" not in err and time.monotonic() < deadline:
            err += a.stderr.readline()
        a.stdin.write("\n")
        a.stdin.flush()
        assert a.wait(30) == 1
        assert "DeviceError" in a.stderr.read() or "another controller" in err
    finally:
        finish(a)


def test_with_sqlite_the_store_leaves_devices_to_file_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.history.lease import db_device_lease

    monkeypatch.setenv("EDGEFARM_DB", str(tmp_path / "h.db"))
    assert db_device_lease("pixel7") is None
    monkeypatch.delenv("EDGEFARM_DB")
    assert db_device_lease("pixel7") is None


def test_edgefarm_run_waits_for_the_lease_then_records_into_postgresql(pg: Any, tiny_samples: dict[str, Path],
                                                                        fast_profiles: Path, tmp_path: Path) -> None:
    url = pg.create_db("lease_run")
    holder = controller(url, "local")
    try:
        assert line(holder) == "HELD"
        run = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--device", "local", "--profiles",
                                str(fast_profiles), "--artifact", str(tiny_samples["onnx"]), "--out",
                                str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT), "EDGEFARM_DB": url})
        assert run.stdout is not None
        seen = []
        for out in run.stdout:  # until run says it waits (it must: the device is leased)
            seen.append(out)
            if "leased by" in out:
                break
        assert f"pid {holder.pid} on " in seen[-1], "".join(seen)
        assert not (tmp_path / "run" / "results.jsonl").exists() or not (tmp_path / "run" / "results.jsonl").read_text()
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        rest = run.stdout.read()
        assert run.wait(300) == 0, "".join(seen) + rest
    finally:
        finish(holder)
    from harness.history.db import parse_url
    from harness.history.store import Store

    with Store(parse_url(url)) as s:
        (r,) = s.runs()
        assert r.records == 1
