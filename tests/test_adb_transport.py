"""The adb transport through the real adb server (adbutils' bundled adb, on a port of this module's own)
to the device-side adbd stand-in: the production path adbutils -> adb server -> device."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from remote_fixtures import DeviceFactory, adb_server, adb_transport, phone, phone_factory  # noqa: F401

from harness import devicestate
from harness.errors import DeviceError, DeviceLost
from harness.standins import adbd
from harness.standins.procs import free_port, gone
from harness.transports.adb import AdbTransport


def test_connects_by_serial_and_reports_facts(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice) -> None:
    t = adb_transport(adb_server, phone)
    facts = t.facts()
    assert facts.reachable and facts.python == sys.executable
    assert facts.extra["model"] == "EdgefarmStandin" and facts.free_storage_bytes
    assert phone.serial in adb_server.cmd("devices").stdout  # `adb connect` was done by the transport
    assert facts.extra["android"] == "14"  # getprop, as on a phone
    t.close()


def test_shell_v2_exit_code_stderr_and_streaming(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice) -> None:
    t = adb_transport(adb_server, phone)
    seen: list[tuple[float, str]] = []
    t0 = time.monotonic()
    res = t.run(["sh", "-c", "echo first; sleep 1; echo second; echo bad >&2; exit 42"], timeout=30,
                on_stdout_line=lambda line: seen.append((time.monotonic() - t0, line)))
    assert (res.exit_code, res.stdout, res.stderr) == (42, "first\nsecond\n", "bad\n")
    assert [s for _, s in seen] == ["first", "second"] and seen[1][0] - seen[0][0] > 0.5  # streamed, not at the end
    assert t.run(["sh", "-c", "kill -9 $$"], timeout=30).exit_code == -9


def test_argv_and_names_cannot_inject(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice, tmp_path: Path) -> None:
    t = adb_transport(adb_server, phone)
    pwned = tmp_path / "pwned"
    evil = [f"x; touch {pwned}", f"$(touch {pwned})", f"`touch {pwned}`", f"'; touch {pwned}; '"]
    assert t.run(["printf", "%s|", *evil], timeout=30).stdout == "|".join(evil) + "|"
    art = tmp_path / f"x; touch {pwned.name}"
    art.write_bytes(b"model")
    remote = f"{phone.root}/edgefarm/x; touch {pwned}"
    t.push(str(art), remote)
    assert t.run(["cat", remote], timeout=30).stdout == "model" and not pwned.exists()


def test_push_pull_atomic_with_progress(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice, tmp_path: Path) -> None:
    src = tmp_path / "model.tflite"
    src.write_bytes(os.urandom(5 * 2**20 + 3))
    t = adb_transport(adb_server, phone)
    seen: list[int] = []
    dest = f"{phone.root}/edgefarm/a/b/model.tflite"
    t.push(str(src), dest, progress=lambda done, total: seen.append(done))
    assert Path(dest).read_bytes() == src.read_bytes() and seen[-1] == src.stat().st_size
    assert not [p for p in Path(dest).parent.iterdir() if ".part-" in p.name]
    t.pull(dest, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_timeout_kills_the_command_and_its_children(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice,
                                                   tmp_path: Path) -> None:
    t = adb_transport(adb_server, phone)
    pids = tmp_path / "pids"
    res = t.run(["sh", "-c", f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; sleep 300"], timeout=2)
    assert res.timed_out
    assert gone(map(int, pids.read_text().split()))
    assert t.run(["true"], timeout=30).exit_code == 0


def test_battery_state_over_adb(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice, tmp_path: Path) -> None:
    """devicestate.battery through the transport's file reading, on a phone's power_supply layout."""
    root = tmp_path / "power_supply"
    files = {"battery": {"type": "Battery", "status": "Discharging", "present": "1", "capacity": "87",
                         "temp": "312", "voltage_now": "3912000", "current_now": "-612000"},
             "usb": {"type": "USB", "online": "0"}}
    for supply, keys in files.items():
        (root / supply).mkdir(parents=True)
        for k, v in keys.items():
            (root / supply / k).write_text(v + "\n")
    t = adb_transport(adb_server, phone)
    bat = devicestate.battery(t, str(root))
    assert (bat.present, bat.status, bat.level_pct, bat.temp_c) == (True, "Discharging", 87.0, 31.2)
    assert (bat.voltage_now_uv, bat.current_now_ua, bat.charging) == (3912000.0, -612000.0, False)
    (root / "usb" / "online").write_text("1\n")  # a charger plugged in: the gauge's figures mean nothing now
    assert devicestate.battery(t, str(root)).charging is True


def test_device_full_gives_a_clear_error(adb_server: adbd.AdbServer, phone_factory: DeviceFactory,
                                         tmp_path: Path) -> None:
    small = phone_factory(quota_mib=4)  # a 4 MiB tmpfs as the phone's storage
    t = adb_transport(adb_server, small)
    src = tmp_path / "big.gguf"
    src.write_bytes(os.urandom(6 * 2**20))
    with pytest.raises(DeviceError, match=r"no space left on device .*need 6291456 bytes, \d+ free"):
        t.push(str(src), f"{small.root}/edgefarm/big.gguf")  # sync itself fails part-way
    assert t.run(["ls", "-A", f"{small.root}/edgefarm"], timeout=30).stdout == ""  # nothing left behind
    (tmp_path / "ok.gguf").write_bytes(b"fits")
    t.push(str(tmp_path / "ok.gguf"), f"{small.root}/edgefarm/ok.gguf")


def test_vanished_device_mid_command_is_device_lost(adb_server: adbd.AdbServer,
                                                   phone_factory: DeviceFactory) -> None:
    dev = phone_factory()
    t = adb_transport(adb_server, dev, name="pixel-standin")
    assert t.run(["true"], timeout=30).exit_code == 0
    threading.Timer(1.0, dev.kill).start()
    with pytest.raises(DeviceLost) as info:
        t.run(["sleep", "60"], timeout=120)
    assert "pixel-standin" in str(info.value) and "sleep" in str(info.value)
    with pytest.raises(DeviceError):
        t.run(["true"], timeout=30)


def test_unknown_serial_and_missing_server_are_clear(adb_server: adbd.AdbServer) -> None:
    nobody = AdbTransport("ghost", serial=f"127.0.0.1:{free_port()}", adb_port=adb_server.port)
    with pytest.raises(DeviceError, match="ghost.*127.0.0.1:"):
        nobody.run(["true"], timeout=10)
    assert not nobody.facts().reachable
    far = AdbTransport("farhost", serial="X123", adb_host="127.0.0.2", adb_port=free_port())
    with pytest.raises(DeviceError, match="no adb server at 127.0.0.2"):
        far.run(["true"], timeout=10)


def test_the_adb_command_line_works_against_the_stand_in(adb_server: adbd.AdbServer, phone: adbd.AdbdDevice,
                                                         tmp_path: Path) -> None:
    """The stand-in is product code: `adb shell/exec-out/push/pull/forward` behave as with a phone."""
    import socket
    import socketserver

    s = phone.serial
    adb_server.cmd("connect", s)
    res = adb_server.cmd("-s", s, "shell", "echo out; echo err >&2; exit 5")
    assert (res.returncode, res.stdout, res.stderr) == (5, "out\n", "err\n")
    assert adb_server.cmd("-s", s, "exec-out", "printf", "raw").stdout == "raw"
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(300_000))
    assert adb_server.cmd("-s", s, "push", str(src), f"{phone.root}/f.bin").returncode == 0
    assert adb_server.cmd("-s", s, "pull", f"{phone.root}/f.bin", str(tmp_path / "g.bin")).returncode == 0
    assert (tmp_path / "g.bin").read_bytes() == src.read_bytes()

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(4096):
                self.request.sendall(data.upper())

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo) as srv:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        local = free_port()
        fwd = adb_server.cmd("-s", s, "forward", f"tcp:{local}", f"tcp:{srv.server_address[1]}")
        assert fwd.returncode == 0, fwd.stderr
        with socket.create_connection(("127.0.0.1", local), timeout=10) as c:
            c.sendall(b"hello device")
            assert c.recv(100) == b"HELLO DEVICE"
        adb_server.cmd("-s", s, "forward", "--remove", f"tcp:{local}")
        srv.shutdown()


@pytest.mark.skipif(not Path("/usr/bin/adb").exists(), reason="Debian's adb package is not installed")
def test_debian_adb_server_works_too(phone_factory: DeviceFactory, tmp_path: Path) -> None:
    srv = adbd.AdbServer.start(adb="/usr/bin/adb")  # adb 29 (Debian) besides adbutils' bundled one
    try:
        dev = phone_factory()
        t = adb_transport(srv, dev)
        res = t.run(["sh", "-c", "echo ok; exit 4"], timeout=30)
        assert (res.exit_code, res.stdout) == (4, "ok\n")
        (tmp_path / "m.onnx").write_bytes(b"x" * 100_000)
        t.push(str(tmp_path / "m.onnx"), f"{dev.root}/edgefarm/m.onnx")
        assert Path(f"{dev.root}/edgefarm/m.onnx").stat().st_size == 100_000
    finally:
        srv.stop()
