"""Faults every transport must survive: a link that dies silently (adb and SSH devices in network namespaces whose
link is taken down), cancelling what a run started (SIGINT/SIGTERM handling calls Transport.cancel), and partial
pushes that a dead transfer left behind."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from remote_fixtures import (  # noqa: F401 - fixtures
    BoardFactory,
    DeviceFactory,
    adb_server,
    adb_transport,
    board_factory,
    phone,
    phone_factory,
    ssh_transport,
)

from harness.errors import DeviceLost, RunCancelled
from harness.standins import adbd
from harness.standins.procs import gone, running
from harness.transports.base import CommandResult, Transport
from harness.transports.local import LocalTransport

# The agent's shape on the device: a session leader whose model child has a process group of its own.
AGENT_LIKE = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen(['sleep', '300'], preexec_fn=os.setpgrp)\n"
    "open(sys.argv[1] + '.tmp', 'w').write(f'{os.getpid()} {child.pid}')\n"
    "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "print('started', flush=True)\n"
    "time.sleep(300)\n"
)


def _wait_for(path: Path, within_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return [int(p) for p in path.read_text().split()]


@pytest.fixture(params=["local", "ssh", "adb"])
def any_transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Transport]:
    if request.param == "local":
        t: Transport = LocalTransport("local", workdir=str(tmp_path / "w"))
    elif request.param == "ssh":
        t = ssh_transport(request.getfixturevalue("board_factory")(), name="board")
    else:
        t = adb_transport(request.getfixturevalue("adb_server"), request.getfixturevalue("phone"), name="phone")
    yield t
    t.close()


def test_cancel_stops_the_agent_and_the_model_group(any_transport: Transport, tmp_path: Path) -> None:
    t = any_transport
    pids_file = tmp_path / "pids"
    results: list[CommandResult] = []
    th = threading.Thread(target=lambda: results.append(
        t.run([sys.executable, "-c", AGENT_LIKE, str(pids_file)], timeout=600)))
    th.start()
    pids = _wait_for(pids_file)
    assert all(running(p) for p in pids)
    t0 = time.monotonic()
    assert t.cancel(timeout=15) is True
    th.join(20)
    assert not th.is_alive() and time.monotonic() - t0 < 20
    assert results and results[0].cancelled and not results[0].timed_out
    assert gone(pids), f"left running on '{t.name}': {[p for p in pids if running(p)]}"
    with pytest.raises(RunCancelled):
        t.run(["true"], timeout=30)


def test_cancel_as_the_command_starts_leaves_nothing(any_transport: Transport, tmp_path: Path) -> None:
    """SIGINT may land before the remote shell has told its PID: the cancel waits for it (up to PID_WAIT_S), then
    kills. (OpenSSH's sshd and adbd also end a session whose channel closes; this holds for servers that do not.)"""
    token = f"{time.time_ns() % 10**6 + 1000}.5"  # a `sleep` duration nobody else uses: found in /proc by it
    script = f"import subprocess, time; subprocess.Popen(['sleep', '{token}']); time.sleep(300)"
    th = threading.Thread(target=lambda: _swallow(lambda: t.run([sys.executable, "-c", script], timeout=600)))
    t = any_transport
    th.start()
    while th.is_alive() and not _inflight(t):  # until run() has registered the command: then cancel at once
        time.sleep(0.001)
    t.cancel(timeout=15)
    th.join(20)
    assert not th.is_alive()
    deadline = time.monotonic() + 10
    while _with_arg(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _with_arg(token)


def _swallow(fn: Callable[[], object]) -> None:
    try:
        fn()
    except RunCancelled:
        pass


def _inflight(t: Transport) -> bool:
    procs = getattr(t, "_procs", None)
    return bool(procs) if procs is not None else bool(getattr(t, "_inflight"))


def _with_arg(arg: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and arg.encode() in (p / "cmdline").read_bytes().split(b"\0") and running(int(p.name)):
                out.append(int(p.name))
        except OSError:
            continue
    return out


def test_cancel_with_nothing_running_is_immediate(any_transport: Transport) -> None:
    assert any_transport.run(["true"], timeout=30).exit_code == 0
    t0 = time.monotonic()
    assert any_transport.cancel(timeout=15) is True
    assert time.monotonic() - t0 < 1.0


def test_adb_dead_link_is_device_lost_within_the_bound(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice,
                                                       phone_factory: DeviceFactory, tmp_path: Path) -> None:
    wifi = phone_factory(netns=True)  # a phone on its own network: 192.0.2.x behind a veth pair
    assert wifi.netns is not None
    keepalive, count = 2.0, 3
    t = adb_transport(adb_server, wifi, name="wifi-phone", keepalive_s=keepalive, keepalive_count=count,
                      connect_timeout_s=3.0)
    other = adb_transport(adb_server, phone, name="usb-phone")
    pids_file = tmp_path / "pids"
    down_at: list[float] = []

    def on_line(line: str) -> None:
        if line == "started" and not down_at:
            wifi.netns.link(False)  # type: ignore[union-attr] - checked above
            down_at.append(time.monotonic())

    with pytest.raises(DeviceLost, match="wifi-phone.*stopped answering") as info:
        t.run([sys.executable, "-c", AGENT_LIKE, str(pids_file)], timeout=300, on_stdout_line=on_line)
    detected = time.monotonic() - down_at[0]
    bound = keepalive * count + keepalive + 5.0  # silence window + one ping period + scheduling slack
    assert count * keepalive - 1.0 <= detected < bound, detected
    assert "still lists it" in str(info.value)
    assert "device" in adb_server.cmd("devices").stdout  # the server still believes in it: we did not ask it
    # Once lost, every call and the kill of a cancel answer at once instead of waiting on the dead link.
    t0 = time.monotonic()
    with pytest.raises(DeviceLost):
        t.run(["true"], timeout=30)
    assert t.cancel(timeout=10) is False  # the lost agent may still run there: not confirmed, and said so
    assert time.monotonic() - t0 < 2.0
    # The other device on the same adb server was never disturbed.
    assert other.run(["echo", "fine"], timeout=30).stdout == "fine\n"
    # A new session on the still-dead device: bounded too (connect timeout + the silence window).
    fresh = adb_transport(adb_server, wifi, name="wifi-phone", keepalive_s=keepalive, keepalive_count=count,
                          connect_timeout_s=3.0)
    src = tmp_path / "m.onnx"
    src.write_bytes(os.urandom(8 * 2**20))
    t0 = time.monotonic()
    with pytest.raises(DeviceLost):
        fresh.push(str(src), f"{wifi.root}/edgefarm/m.onnx")
    assert time.monotonic() - t0 < 3.0 + keepalive * count + keepalive + 10.0
    wifi.netns.link(True)  # the device's processes were never told: stop them here
    assert other.run(["true"], timeout=30).exit_code == 0


def test_ssh_cancel_on_a_dead_link_returns_within_its_bound(board_factory: BoardFactory, tmp_path: Path) -> None:
    b = board_factory(netns=True)
    assert b.netns is not None
    t = ssh_transport(b, name="unplugged", keepalive_s=2.0)
    pids_file = tmp_path / "pids"
    results: list[object] = []

    def run() -> None:
        try:
            results.append(t.run([sys.executable, "-c", AGENT_LIKE, str(pids_file)], timeout=300))
        except DeviceLost as e:
            results.append(e)

    th = threading.Thread(target=run)
    th.start()
    _wait_for(pids_file)
    b.netns.link(False)
    t0 = time.monotonic()
    assert t.cancel(timeout=5) is False  # could not be told, and said so
    assert time.monotonic() - t0 < 7.0
    th.join(30)
    assert not th.is_alive() and results
    t.close()


def _part(directory: Path, name: str, age_s: float) -> Path:
    p = directory / name
    p.write_bytes(b"half a model")
    past = time.time() - age_s
    os.utime(p, (past, past))
    return p


def test_a_session_removes_only_stale_partial_pushes(any_transport: Transport, tmp_path: Path) -> None:
    t = any_transport
    workdir = Path(getattr(t, "workdir"))
    workdir.mkdir(parents=True, exist_ok=True)
    stale = _part(workdir, ".9f86d081.onnx.part-1a2b3c4d", 3600)  # a push that died an hour ago
    live = _part(workdir, ".2c26b46b.gguf.part-5e6f7a8b", 5)  # another controller's push in progress
    mine = _part(workdir, "9f86d081.onnx", 3600)  # staged artifacts and other files are not partials
    hidden = _part(workdir, ".keep", 3600)
    facts = t.facts()
    assert facts.reachable and facts.extra["stale_parts_removed"] == "1"
    assert not stale.exists() and live.exists() and mine.exists() and hidden.exists()


@pytest.mark.parametrize("kind", ["ssh", "adb"])
def test_a_push_cut_midway_leaves_a_partial_that_a_later_session_removes_once_stale(
        kind: str, board_factory: BoardFactory, adb_server: adbd.AdbServer, phone_factory: DeviceFactory,
        tmp_path: Path) -> None:
    if kind == "ssh":
        board = board_factory(netns=True)
        netns, workdir = board.netns, board.workdir / "edgefarm"

        def connect() -> Transport:
            return ssh_transport(board, name="cut", keepalive_s=2.0)
    else:
        wifi = phone_factory(netns=True)
        netns, workdir = wifi.netns, wifi.root / "edgefarm"

        def connect() -> Transport:
            return adb_transport(adb_server, wifi, name="cut", keepalive_s=2.0, connect_timeout_s=3.0)
    assert netns is not None
    src = tmp_path / "model.onnx"
    src.write_bytes(os.urandom(256 * 2**20))
    t = connect()
    t.facts()

    def cut(done: int, total: int) -> None:
        if done > 8 * 2**20 and not cut.done:  # type: ignore[attr-defined]
            cut.done = True  # type: ignore[attr-defined]
            netns.link(False)  # type: ignore[union-attr]

    cut.done = False  # type: ignore[attr-defined]
    with pytest.raises(DeviceLost):
        t.push(str(src), str(workdir / "9f86d081.onnx"), progress=cut)
    t.close()
    netns.link(True)
    parts = [p for p in workdir.iterdir() if p.name.startswith(".9f86d081.onnx.part-")]
    assert len(parts) == 1, sorted(p.name for p in workdir.iterdir())
    again = connect()  # a later session: the partial is young, it may be someone's push in progress
    assert again.facts().extra["stale_parts_removed"] == "0" and parts[0].exists()
    again.close()
    old = time.time() - 3600
    os.utime(parts[0], (old, old))
    later = connect()
    assert later.facts().extra["stale_parts_removed"] == "1" and not parts[0].exists()
    later.close()
