"""Shared set-up for the remote-device tests: real sshd boards, a private adb server, adbd stand-ins,
and temporary device profiles pointing at them. Every port comes from the kernel and every directory
from tmp_path_factory, so pytest-xdist workers never collide; everything started here is stopped here.

Test modules import the fixtures they use (`from remote_fixtures import ...`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.standins import adbd, sshd
from harness.transports.adb import AdbTransport
from harness.transports.ssh import SSHTransport

BoardFactory = Callable[..., sshd.SshdBoard]
DeviceFactory = Callable[..., adbd.AdbdDevice]


def _need_root_tools() -> None:
    if not os.path.exists(sshd.SSHD):
        pytest.skip("openssh-server is not installed (run `ci/setup.sh --test`)")


@pytest.fixture(scope="module")
def board_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoardFactory]:
    """Start sshd boards on demand; all are stopped when the module's tests are done."""
    _need_root_tools()
    boards: list[sshd.SshdBoard] = []

    def make(**kw: Any) -> sshd.SshdBoard:
        if kw.get("netns") and shutil.which("ip") is None:
            pytest.skip("iproute2 is not installed (run `ci/setup.sh --test`)")
        b = sshd.start(tmp_path_factory.mktemp("board"), **kw)
        boards.append(b)
        return b

    yield make
    for b in reversed(boards):
        b.stop()


@pytest.fixture(scope="module")
def board(board_factory: BoardFactory) -> sshd.SshdBoard:
    """One loopback SSH board shared by a module's tests."""
    return board_factory()


def ssh_transport(b: sshd.SshdBoard, name: str = "board", **kw: Any) -> SSHTransport:
    """A transport to a board, as a profile would configure it."""
    args: dict[str, Any] = {"host": b.host, "port": b.port, "user": b.user, "identity_file": str(b.client_key),
                            "known_hosts": str(b.known_hosts), "workdir": str(b.workdir / "edgefarm"),
                            "python": sys.executable}
    args.update(kw)
    return SSHTransport(name, **args)


@pytest.fixture(scope="module")
def adb_server() -> Iterator[adbd.AdbServer]:
    """A private adb server for this module (own port; killed with `adb kill-server`)."""
    srv = adbd.AdbServer.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def phone_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeviceFactory]:
    devices: list[adbd.AdbdDevice] = []

    def make(**kw: Any) -> adbd.AdbdDevice:
        d = adbd.start(tmp_path_factory.mktemp("phone") / "storage", **kw)
        devices.append(d)
        return d

    yield make
    for d in devices:
        d.stop()


@pytest.fixture(scope="module")
def phone(phone_factory: DeviceFactory) -> adbd.AdbdDevice:
    return phone_factory()


def adb_transport(srv: adbd.AdbServer, dev: adbd.AdbdDevice, name: str = "phone", **kw: Any) -> AdbTransport:
    args: dict[str, Any] = {"serial": dev.serial, "adb_port": srv.port, "workdir": str(dev.root / "edgefarm"),
                            "python": sys.executable}
    args.update(kw)
    return AdbTransport(name, **args)


# -- profiles pointing at stand-ins ------------------------------------------------------------------------------

FAST_RUN = {"warmup_runs": 1, "warmup_min_s": 0.0, "min_runs": 20, "min_s": 0.2, "max_s": 5.0, "timeout_s": 120.0,
            "gguf_prompt_tokens": 8, "gguf_new_tokens": 8, "gguf_repetitions": 2}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_profile(directory: Path, name: str, device_class: str, transport: dict[str, Any], *,
                  os_name: str = "linux", run: dict[str, Any] | None = None) -> Path:
    """A strict profile file for a stand-in device (what a user would write for the real one)."""
    lines = ["schema = 1", f"name = {_toml(name)}", f"class = {_toml(device_class)}", f"os = {_toml(os_name)}",
             "ram_mib = 4096", "", "[transport]"]
    lines += [f"{k} = {_toml(v)}" for k, v in transport.items() if v is not None]
    lines += ["", "[run]"] + [f"{k} = {_toml(v)}" for k, v in {**FAST_RUN, **(run or {})}.items()]
    path = directory / f"{name}.toml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def ssh_profile(directory: Path, name: str, b: sshd.SshdBoard, **run: Any) -> Path:
    return write_profile(directory, name, "board", {
        "kind": "ssh", "host": b.host, "port": b.port, "user": b.user, "identity_file": str(b.client_key),
        "known_hosts": str(b.known_hosts), "workdir": str(b.workdir / "edgefarm"), "python": sys.executable,
    }, run=run)


def adb_profile(directory: Path, name: str, srv: adbd.AdbServer, dev: adbd.AdbdDevice, **run: Any) -> Path:
    return write_profile(directory, name, "phone", {
        "kind": "adb", "serial": dev.serial, "adb_host": "127.0.0.1", "adb_port": srv.port,
        "workdir": str(dev.root / "edgefarm"), "python": sys.executable,
    }, os_name="android", run=run)


def local_profile(directory: Path, name: str, workdir: Path, **run: Any) -> Path:
    return write_profile(directory, name, "laptop", {"kind": "local", "workdir": str(workdir)}, run=run)
