"""Farm runs over stand-in devices: local + two SSH boards (each in a network namespace of its own) + an
adb phone, in parallel, through the CLI and the production code paths; then the faults: a device that
drops mid-run, a hung agent, and the device check's messages."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from remote_fixtures import (  # noqa: F401 - fixtures
    BoardFactory,
    DeviceFactory,
    adb_profile,
    adb_server,
    board_factory,
    local_profile,
    phone_factory,
    ssh_profile,
    write_profile,
)

from harness import cli
from harness.artifacts import inspect
from harness.devicecheck import check_device
from harness.farm import run_farm
from harness.profiles import load_profile
from harness.records import ArtifactInfo
from harness.runner import RunOverrides
from harness.standins import adbd


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from harness.samples import write_samples

    return [p for p in write_samples(tmp_path_factory.mktemp("samples"), "tiny") if p.suffix in (".onnx", ".tflite")]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, board_factory: BoardFactory, adb_server: adbd.AdbServer,
         phone_factory: DeviceFactory) -> Path:
    """A profile directory: local, rpi-a and rpi-b (sshd in namespaces), pixel (adbd via the adb server)."""
    d = tmp_path_factory.mktemp("profiles")
    ssh_profile(d, "rpi-a", board_factory(netns=True))
    ssh_profile(d, "rpi-b", board_factory(netns=True))
    adb_profile(d, "pixel", adb_server, phone_factory())
    local_profile(d, "laptop", tmp_path_factory.mktemp("local-device"))
    return d


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def _span(rec: dict[str, Any]) -> tuple[float, float]:
    ts = [p["host_t"] for p in rec["provenance"]["host_phases"]]
    return min(ts), max(ts)


def test_farm_run_in_parallel_then_rerun_sends_nothing(farm: Path, samples: list[Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    devices = ["laptop", "rpi-a", "rpi-b", "pixel"]
    argv = ["run", "--profiles", str(farm), *[f"--device={d}" for d in devices],
            *[f"--artifact={a}" for a in samples], "--min-s", "0.5", "--quiet"]
    assert cli.main([*argv, "--out", str(tmp_path / "run1")]) == 0, capsys.readouterr()
    recs = _records(tmp_path / "run1")
    assert sorted((r["device"]["name"], r["status"]) for r in recs) == sorted(
        (d, "ok") for d in devices for _ in samples), [r.get("message") for r in recs]
    first = capsys.readouterr().out
    assert "bytes transferred to devices: 0" not in first
    # The two SSH boards ran at the same time, each on a connection of its own.
    a = [_span(r) for r in recs if r["device"]["name"] == "rpi-a"]
    b = [_span(r) for r in recs if r["device"]["name"] == "rpi-b"]
    a_span, b_span = (min(s for s, _ in a), max(e for _, e in a)), (min(s for s, _ in b), max(e for _, e in b))
    assert a_span[0] < b_span[1] and b_span[0] < a_span[1], (a_span, b_span)
    # Same artifacts again: content-addressed staging sends nothing to any device.
    rc = cli.main([*argv, "--out", str(tmp_path / "run2")])
    out = capsys.readouterr().out
    assert rc == 0, [(r["device"]["name"], r["status"], r.get("message")) for r in _records(tmp_path / "run2")]
    assert "bytes transferred to devices: 0 " in out, out
    assert all(r["provenance"]["push"]["skipped"] for r in _records(tmp_path / "run2"))


def test_devices_command_lists_reachability(farm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "profiles"
    for p in farm.glob("*.toml"):
        (d / p.name).parent.mkdir(exist_ok=True)
        (d / p.name).write_text(p.read_text())
    write_profile(d, "gone", "board", {"kind": "ssh", "host": "127.0.0.1", "port": 1, "connect_timeout_s": 2.0})
    pixel = (d / "pixel.toml").read_text().replace(f'python = "{sys.executable}"', 'python = "/nonexistent/python3"')
    (d / "pixel-nopy.toml").write_text(pixel.replace('name = "pixel"', 'name = "pixel-nopy"'))
    monkeypatch.setenv("EDGEFARM_PROFILES", str(d))  # how a user points edgefarm at another profile set
    assert cli.main(["devices"]) == 0
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    for name in ("laptop", "rpi-a", "rpi-b", "pixel"):
        assert " reachable " in lines[name], lines[name]
    assert "UNREACHABLE" in lines["gone"] and "127.0.0.1:1" in lines["gone"]
    assert "NOT READY" in lines["pixel-nopy"] and "Termux" in lines["pixel-nopy"]


def test_device_check_names_what_is_missing(adb_server: adbd.AdbServer, phone_factory: DeviceFactory,
                                            samples: list[Path], tmp_path: Path) -> None:
    phone = phone_factory()
    arts = [inspect(p) for p in samples]
    nopy = load_profile(write_profile(tmp_path, "nopy", "phone", {
        "kind": "adb", "serial": phone.serial, "adb_port": adb_server.port, "workdir": str(phone.root / "ef"),
        "python": "/data/data/com.termux/files/usr/bin/python3"}, os_name="android"))
    c = check_device(nopy, arts)
    assert not c.ok and "Termux" in c.summary and "pkg install python" in c.summary
    if Path("/usr/bin/python3").exists() and "onnxruntime" not in Path("/usr/bin/python3").resolve().name:
        bare = load_profile(write_profile(tmp_path, "bare", "phone", {
            "kind": "adb", "serial": phone.serial, "adb_port": adb_server.port, "workdir": str(phone.root / "ef"),
            "python": "/usr/bin/python3"}, os_name="android"))
        c = check_device(bare, arts)
        if not c.ok:  # Debian's python3 has no onnxruntime
            assert "pip install onnxruntime" in c.summary or "ai-edge-litert" in c.summary
    ok = load_profile(write_profile(tmp_path, "good", "phone", {
        "kind": "adb", "serial": phone.serial, "adb_port": adb_server.port, "workdir": str(phone.root / "ef"),
        "python": sys.executable}, os_name="android"))
    c = check_device(ok, arts)
    assert c.ok, c.summary
    assert "onnxruntime" in c.summary and "free" in c.summary


def test_device_dropping_mid_run_is_device_lost_and_others_finish(
        board_factory: BoardFactory, adb_server: adbd.AdbServer, phone_factory: DeviceFactory,
        samples: list[Path], tmp_path: Path) -> None:
    d = tmp_path / "profiles"
    doomed_board = board_factory(netns=True)
    doomed_phone = phone_factory()
    ssh_profile(d, "rpi-doomed", doomed_board, min_s=4.0, max_s=8.0, max_runs=10**9)
    adb_profile(d, "pixel-doomed", adb_server, doomed_phone, min_s=4.0, max_s=8.0, max_runs=10**9)
    ssh_profile(d, "rpi-fine", board_factory(netns=True))
    profiles = [load_profile(d / f"{n}.toml") for n in ("rpi-doomed", "pixel-doomed", "rpi-fine")]
    arts: list[ArtifactInfo] = [inspect(p) for p in samples]
    killers = {"rpi-doomed": doomed_board.kill, "pixel-doomed": doomed_phone.kill}
    fired: set[str] = set()

    def on_event(device: str, artifact: str, ev: dict[str, Any]) -> None:
        # Pull the plug while the second artifact is being measured.
        if device in killers and artifact == arts[1].name and ev.get("phase") == "measure" and device not in fired:
            fired.add(device)
            threading.Timer(0.5, killers[device]).start()

    out = tmp_path / "run"
    res = run_farm(profiles, arts, out, RunOverrides(), on_event=on_event)
    by = {(r.device.name, r.artifact.name): r for r in res.records}
    assert fired == set(killers)
    for dev in killers:
        assert by[(dev, arts[0].name)].status == "ok"
        lost = by[(dev, arts[1].name)]
        assert lost.status == "device_lost" and dev in (lost.message or ""), lost.message
    assert all(by[("rpi-fine", a.name)].status == "ok" for a in arts)
    on_disk = {(r["device"]["name"], r["artifact"]["name"]): r["status"] for r in _records(out)}
    assert on_disk == {k: r.status for k, r in by.items()}


@pytest.mark.slow
def test_hung_agent_is_killed_at_its_timeout(board_factory: BoardFactory, samples: list[Path],
                                             tmp_path: Path) -> None:
    b = board_factory()
    # The board's python hangs whenever it is asked to run a model (a wedged runtime), and ignores SIGTERM.
    hang = b.dir / "hanging-python"
    hang.write_text(f'#!/bin/sh\ncase " $* " in *" run "*) trap "" TERM; while :; do sleep 1; done;; esac\n'
                    f'exec {sys.executable} "$@"\n')
    hang.chmod(0o755)
    d = tmp_path / "profiles"
    ssh_profile(d, "rpi-hang", b, timeout_s=1.0)
    text = (d / "rpi-hang.toml").read_text().replace(f'python = "{sys.executable}"', f'python = "{hang}"')
    (d / "rpi-hang.toml").write_text(text)
    res = run_farm([load_profile(d / "rpi-hang.toml")], [inspect(samples[0])], tmp_path / "run", RunOverrides())
    (rec,) = res.records
    assert rec.status == "timeout", rec.message
    leftover = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).startswith(str(hang))]
    assert not leftover


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split(" ", 1)[-1]
    except OSError:
        return ""


def test_missing_runtime_is_reported_with_the_fix_before_running(board_factory: BoardFactory, samples: list[Path],
                                                                 tmp_path: Path) -> None:
    bare_python = Path("/usr/bin/python3")  # Debian's own: standard library only, no runtimes
    if not bare_python.exists() or bare_python.resolve() == Path(sys.executable).resolve():
        pytest.skip("no bare system python3 to stand for a fresh board")
    b = board_factory()
    d = tmp_path / "profiles"
    ssh_profile(d, "fresh-board", b)
    text = (d / "fresh-board.toml").read_text().replace(f'python = "{sys.executable}"', f'python = "{bare_python}"')
    (d / "fresh-board.toml").write_text(text)
    res = run_farm([load_profile(d / "fresh-board.toml")], [inspect(p) for p in samples], tmp_path / "run",
                   RunOverrides())
    by = {r.artifact.format: r for r in res.records}
    assert by["onnx"].status == "error" and "pip install onnxruntime" in (by["onnx"].message or "")
    assert by["tflite"].status == "error" and "ai-edge-litert" in (by["tflite"].message or "")


def test_changed_host_key_is_its_own_state_and_a_nonzero_exit(board_factory: BoardFactory, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import paramiko

    from harness.standins import sshd

    b = board_factory()
    d = tmp_path / "profiles"
    ssh_profile(d, "rpi-ok", b)
    ssh_profile(d, "rpi-rekeyed", b)
    known = tmp_path / "known_hosts"  # rpi-rekeyed's known_hosts holds another key for the same address
    other = paramiko.Ed25519Key.from_private_key_file(str(sshd.make_keypair(tmp_path / "old-key")))
    known.write_text(f"[{b.host}]:{b.port} {other.get_name()} {other.get_base64()}\n")
    prof = d / "rpi-rekeyed.toml"
    prof.write_text(prof.read_text().replace(f'known_hosts = "{b.known_hosts}"', f'known_hosts = "{known}"'))
    assert cli.main(["devices", "--profiles", str(d)]) == 3
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert " reachable " in lines["rpi-ok"]
    line = lines["rpi-rekeyed"]
    assert "HOST KEY MISMATCH" in line and "UNREACHABLE" not in line and "cable" not in line
    assert f"{known}:1" in line and "SHA256:" in line and "ssh-keygen -R" in line


def test_adb_link_down_mid_run_is_device_lost_within_the_bound(
        adb_server: adbd.AdbServer, phone_factory: DeviceFactory, board_factory: BoardFactory,
        samples: list[Path], tmp_path: Path) -> None:
    """A Wi-Fi phone whose link goes down silently while the agent measures: device_lost in about 3 x
    keepalive_s (the adb server still lists it as `device`), not a 26-minute `timeout`; the SSH board beside
    it finishes."""
    import time

    wifi = phone_factory(netns=True)
    assert wifi.netns is not None
    d = tmp_path / "profiles"
    write_profile(d, "pixel-wifi", "phone", {
        "kind": "adb", "serial": wifi.serial, "adb_port": adb_server.port, "workdir": str(wifi.root / "edgefarm"),
        "python": sys.executable, "keepalive_s": 2.0, "connect_timeout_s": 3.0,
    }, os_name="android", run={"min_s": 30.0, "max_s": 60.0, "max_runs": 10**9, "timeout_s": 600.0})
    ssh_profile(d, "rpi-fine", board_factory(netns=True))
    profiles = [load_profile(d / f"{n}.toml") for n in ("pixel-wifi", "rpi-fine")]
    down_at: list[float] = []

    def on_event(device: str, artifact: str, ev: dict[str, Any]) -> None:
        if device == "pixel-wifi" and ev.get("phase") == "measure" and not down_at:
            wifi.netns.link(False)  # type: ignore[union-attr] - checked above
            down_at.append(time.monotonic())

    recorded_at: dict[str, float] = {}
    res = run_farm(profiles, [inspect(samples[0])], tmp_path / "run", RunOverrides(), on_event=on_event,
                   on_record=lambda r: recorded_at.setdefault(r.device.name, time.monotonic()))
    by = {r.device.name: r for r in res.records}
    assert down_at, "the measure phase never started"
    lost = by["pixel-wifi"]
    assert lost.status == "device_lost" and "stopped answering" in (lost.message or ""), lost.message
    assert by["rpi-fine"].status == "ok", by["rpi-fine"].message
    # Bounded: keepalive 2 s x 3 of silence + one ping period, and no kill waits on the dead link.
    assert recorded_at["pixel-wifi"] - down_at[0] < 30, recorded_at["pixel-wifi"] - down_at[0]
