"""The SSH transport against a real OpenSSH sshd started by the tests (loopback or a network namespace)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import paramiko
import pytest
from remote_fixtures import BoardFactory, board, board_factory, ssh_transport  # noqa: F401 - fixtures

from harness.errors import DeviceError, DeviceLost, HostKeyMismatch
from harness.standins import sshd
from harness.standins.procs import gone
from harness.transports.ssh import GCM, fingerprint


def test_run_streams_stdout_and_keeps_stderr_and_exit_code(board: sshd.SshdBoard) -> None:
    t = ssh_transport(board)
    try:
        seen: list[str] = []
        res = t.run(["sh", "-c", "for i in 1 2 3; do echo line$i; done; echo oops >&2; exit 3"], timeout=30,
                    on_stdout_line=seen.append)
        assert seen == ["line1", "line2", "line3"]
        assert (res.exit_code, res.stderr, res.timed_out) == (3, "oops\n", False)
        assert t.run(["sh", "-c", 'echo "$GREETING"'], timeout=30, env={"GREETING": "hi; there"}).stdout == "hi; there\n"
    finally:
        t.close()


def test_one_connection_reused_with_gcm_and_keepalive(board: sshd.SshdBoard) -> None:
    t = ssh_transport(board)
    try:
        t.run(["true"], timeout=30)
        first = t.conn.get()
        t.run(["true"], timeout=30)
        assert t.conn.get() is first
        assert first.remote_cipher == GCM and first.local_cipher == GCM
        # keepalives: shown by test_pulled_cable_is_device_lost_within_the_dead_peer_timeout
    finally:
        t.close()


def test_argv_and_names_cannot_inject(board: sshd.SshdBoard, tmp_path: Path) -> None:
    t = ssh_transport(board)
    pwned = board.dir / "pwned"
    evil = [f"x; touch {pwned}", f"$(touch {pwned})", f"`touch {pwned}`", f"' ; touch {pwned}; '", "a\nb"]
    try:
        res = t.run(["printf", "%s|", *evil], timeout=30)
        assert res.stdout == "|".join(evil) + "|"
        art = tmp_path / f"x; touch {pwned.name}"
        art.write_bytes(b"model")
        remote = f"{board.workdir}/edgefarm/x; touch {pwned}"
        t.push(str(art), remote)
        assert t.run(["cat", remote], timeout=30).stdout == "model"
        assert not pwned.exists()
    finally:
        t.close()


def test_push_pull_atomic_with_progress(board: sshd.SshdBoard, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    src.write_bytes(os.urandom(3 * 2**20 + 7))
    t = ssh_transport(board)
    seen: list[tuple[int, int]] = []
    dest = f"{board.workdir}/edgefarm/deep/dir/model.bin"
    try:
        t.push(str(src), dest, progress=lambda done, total: seen.append((done, total)))
        assert Path(dest).read_bytes() == src.read_bytes()
        assert seen[-1] == (src.stat().st_size, src.stat().st_size) and len(seen) > 2
        assert not [p for p in Path(dest).parent.iterdir() if ".part-" in p.name]
        t.pull(dest, str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        with pytest.raises(DeviceError, match="pull of .*missing"):
            t.pull(f"{board.workdir}/missing", str(tmp_path / "x"))
    finally:
        t.close()


def test_timeout_kills_the_remote_process_tree(board: sshd.SshdBoard) -> None:
    t = ssh_transport(board)
    pids = board.dir / "pids"
    try:
        script = f"sleep 300 & echo $! > {pids}; exec sh -c 'echo $$ >> {pids}; sleep 300'"
        t0 = time.monotonic()
        res = t.run(["sh", "-c", script], timeout=2)
        assert res.timed_out and time.monotonic() - t0 < 15
        assert gone(map(int, pids.read_text().split()))
        assert t.run(["echo", "still usable"], timeout=30).stdout == "still usable\n"
    finally:
        t.close()


def test_unknown_host_key_is_refused(board_factory: BoardFactory) -> None:
    b = board_factory(trust=False)
    t = ssh_transport(b)
    with pytest.raises(DeviceError, match=r"host key of .* is not in .*refusing"):
        t.run(["true"], timeout=30)
    assert b.known_hosts.read_text() == ""


def test_changed_host_key_is_a_mismatch_even_with_tofu(board_factory: BoardFactory, tmp_path: Path) -> None:
    b = board_factory()
    other = paramiko.Ed25519Key.from_private_key_file(str(sshd.make_keypair(tmp_path / "impostor")))
    name = f"[{b.host}]:{b.port}"
    b.known_hosts.write_text(f"# farm keys\nelsewhere {other.get_name()} {other.get_base64()}\n"
                             f"{name} {other.get_name()} {other.get_base64()}\n")
    t = ssh_transport(b, trust_on_first_use=True)
    with pytest.raises(HostKeyMismatch) as info:
        t.run(["true"], timeout=30)
    e = info.value
    assert (e.expected, e.offered) == (fingerprint(other), fingerprint(paramiko.Ed25519Key.from_private_key_file(
        str(b.host_key))))
    assert (e.known_hosts, e.line) == (str(b.known_hosts), 3)
    assert f"{b.known_hosts}:3" in str(e) and "ssh-keygen -R" in str(e) and "verify" in str(e)
    with pytest.raises(HostKeyMismatch):
        t.facts()  # never "unreachable"
    assert b.known_hosts.read_text().count("\n") == 3  # nothing recorded over it


def test_trust_on_first_use_warns_and_records(board_factory: BoardFactory,
                                              caplog: pytest.LogCaptureFixture) -> None:
    b = board_factory(trust=False)
    t = ssh_transport(b, trust_on_first_use=True)
    with caplog.at_level(logging.WARNING):
        assert t.run(["echo", "ok"], timeout=30).stdout == "ok\n"
    t.close()
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "TRUSTING UNKNOWN HOST KEY" in warning and f"[{b.host}]:{b.port}" in warning and "SHA256:" in warning
    assert b.known_hosts.read_text().split()[:2] == b.host_key_line.split()[:2]
    strict = ssh_transport(b)  # the recorded key now verifies without TOFU
    assert strict.run(["echo", "ok"], timeout=30).stdout == "ok\n"
    strict.close()


def test_jump_host_reaches_a_board_only_it_can_see(board_factory: BoardFactory) -> None:
    gw = board_factory(netns=True)  # the farm gateway: its own namespace and TEST-NET address
    assert gw.netns is not None
    # The board listens on the namespace's loopback: unreachable from here except through the gateway.
    inner = board_factory(netns=gw.netns, listen="127.0.0.1", client_key=gw.client_key)
    inner.known_hosts.write_text(gw.host_key_line + inner.host_key_line)
    direct = ssh_transport(inner, connect_timeout_s=2)
    with pytest.raises(DeviceError):
        direct.run(["true"], timeout=10)
    t = ssh_transport(inner, jump=f"{gw.user}@{gw.host}:{gw.port}")
    try:
        res = t.run(["sh", "-c", "echo $SSH_CONNECTION"], timeout=30)
        assert res.exit_code == 0 and res.stdout.split()[2] == "127.0.0.1"
        assert res.stdout.split()[3] == str(inner.port)
    finally:
        t.close()


def test_killed_sshd_mid_command_is_device_lost(board_factory: BoardFactory) -> None:
    b = board_factory()
    t = ssh_transport(b, name="rpi-standin")
    threading.Timer(1.0, b.kill).start()
    t0 = time.monotonic()
    with pytest.raises(DeviceLost) as info:
        t.run(["sleep", "60"], timeout=120)
    assert time.monotonic() - t0 < 20
    assert "rpi-standin" in str(info.value) and "sleep" in str(info.value)
    t.close()


def test_full_storage_gives_a_clear_error_and_no_partial_file(board_factory: BoardFactory, tmp_path: Path) -> None:
    b = board_factory(storage_quota_mib=4)  # a 4 MiB tmpfs: the kernel's own ENOSPC half-way through
    src = tmp_path / "big.onnx"
    src.write_bytes(os.urandom(6 * 2**20))
    t = ssh_transport(b)
    try:
        with pytest.raises(DeviceError, match=r"no space left on device .*need 6291456 bytes, \d+ free"):
            t.push(str(src), f"{b.workdir}/big.onnx")
        assert t.run(["ls", "-A", str(b.workdir)], timeout=30).stdout == ""  # seen inside the board's tmpfs
        small = tmp_path / "small.onnx"
        small.write_bytes(b"fits")
        t.push(str(small), f"{b.workdir}/small.onnx")  # the device is usable again
    finally:
        t.close()


def test_ssh_agent_auth_without_a_key_file(board: sshd.SshdBoard, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(board.client_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on: the agent must do it
        t = ssh_transport(board, identity_file=None)
        assert t.run(["echo", "via agent"], timeout=30).stdout == "via agent\n"
        t.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_pulled_cable_is_device_lost_within_the_dead_peer_timeout(board_factory: BoardFactory) -> None:
    import subprocess

    b = board_factory(netns=True)
    assert b.netns is not None
    t = ssh_transport(b, name="unplugged", keepalive_s=2.0)  # lost after ~4 x 2 s of silence
    t.run(["true"], timeout=30)
    threading.Timer(1.0, lambda: subprocess.run(["ip", "link", "set", b.netns.host_if, "down"], check=True)).start()
    t0 = time.monotonic()
    with pytest.raises(DeviceLost, match="unplugged.*sleep"):
        t.run(["sleep", "120"], timeout=100)
    assert time.monotonic() - t0 < 30
    t.close()
