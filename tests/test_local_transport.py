"""The local transport and the memory cap, on this machine for real."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from harness import memcap
from harness.locks import device_lock
from harness.transports.local import LocalTransport

ALLOC = "import sys; b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b'x' * len(b[::4096]); print('done')"


def test_run_streams_lines_and_exit_code(tmp_path: Path) -> None:
    t = LocalTransport("local", workdir=str(tmp_path))
    seen: list[str] = []
    res = t.run([sys.executable, "-c", "import sys\nfor i in range(3): print(i, flush=True)\nsys.exit(3)"],
                timeout=30, on_stdout_line=seen.append)
    assert seen == ["0", "1", "2"] and res.exit_code == 3 and not res.timed_out


def test_argv_is_not_a_shell_string(tmp_path: Path) -> None:
    t = LocalTransport("local", workdir=str(tmp_path))
    evil = f"x; touch {tmp_path}/pwned"
    res = t.run([sys.executable, "-c", "import sys; print(sys.argv[1])", evil], timeout=30)
    assert res.stdout.strip() == evil and not (tmp_path / "pwned").exists()


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    t = LocalTransport("local", workdir=str(tmp_path))
    t0 = time.monotonic()
    res = t.run([sys.executable, "-c", "import subprocess,sys; subprocess.run([sys.executable,'-c','import time; time.sleep(60)'])"],
                timeout=1.0)
    assert res.timed_out and res.exit_code == -9 and time.monotonic() - t0 < 10


def test_push_is_atomic_copy(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc" * 1000)
    t = LocalTransport("local", workdir=str(tmp_path / "dev"))
    t.push(str(src), str(tmp_path / "dev" / "sub" / "x.bin"))
    assert (tmp_path / "dev" / "sub" / "x.bin").read_bytes() == src.read_bytes()
    assert not list((tmp_path / "dev" / "sub").glob(".*part*"))


def test_memory_cap_kills_over_limit_and_spares_under(tmp_path: Path) -> None:
    cap = memcap.create(200)
    if cap.cgroup is None:
        pytest.skip(f"no writable cgroup here ({'; '.join(cap.notes)}); RLIMIT_AS is covered by the agent tests")
    t = LocalTransport("local", workdir=str(tmp_path), memory_cap=cap)
    try:
        under = t.run([sys.executable, "-c", ALLOC, "50"], timeout=60)
        assert under.exit_code == 0 and cap.oom_kills() == 0
        over = t.run([sys.executable, "-c", ALLOC, "400"], timeout=60)
        assert over.exit_code == -9 and cap.oom_kills() == 1
        peak = cap.peak_mib()
        assert peak is not None and 150 < peak <= 201
    finally:
        t.close()


def test_device_lock_serialises_holders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFARM_LOCK_DIR", str(tmp_path))
    order: list[str] = []
    waits: list[str] = []
    with device_lock("phone"):
        def second() -> None:
            with device_lock("phone", on_wait=waits.append):
                order.append("second")
        th = threading.Thread(target=second)
        th.start()
        deadline = time.monotonic() + 30
        while not waits and time.monotonic() < deadline:  # until the second holder says it is waiting
            time.sleep(0.02)
        order.append("first-done")
    th.join(10)
    assert order == ["first-done", "second"]
    assert waits and "in use by pid" in waits[0]
