"""The adb transport (adbutils): Android phones, through an adb server that may run on another farm host.

Commands go over shell v2 (separate stdout and stderr, a real exit code), read as they arrive; pushes go
through the sync service to a temporary name and are moved into place; a device that vanishes from the
server mid-command is DeviceLost.
"""

from __future__ import annotations

import io
import os
import posixpath
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import adbutils
from adbutils.errors import AdbError

from harness.errors import DeviceError, DeviceLost
from harness.transports.base import CommandResult, DeviceFacts, LineCallback
from harness.transports.remote_shell import PidMarker, command_line, decode_exit, kill_script, parse_df

if TYPE_CHECKING:
    from harness.profiles import Profile

SYNC_CHUNK = 64 * 1024  # the sync protocol's maximum DATA size
DEFAULT_WORKDIR = "/data/local/tmp/edgefarm"  # writable by the shell user on every Android
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _ProgressReader(io.RawIOBase):
    """A file that reports how much of it has been read (adbutils' sync.push reads it)."""

    def __init__(self, fh: io.BufferedReader, total: int, progress: Callable[[int, int], None] | None) -> None:
        self.fh, self.total, self.progress, self.done = fh, total, progress, 0
        self._last = 0.0

    def read(self, n: int = -1) -> bytes:
        # adbutils asks for 4 KiB at a time; a sync DATA message may carry 64 KiB, which is what `adb push`
        # sends. Handing it 64 KiB makes 16x fewer messages (and the transfer several times faster).
        data = self.fh.read(SYNC_CHUNK if n < 0 else max(n, SYNC_CHUNK))
        self.done += len(data)
        now = time.monotonic()
        if self.progress is not None and (not data or now - self._last > 0.1):
            self._last = now
            self.progress(self.done, self.total)
        return data

    def readable(self) -> bool:
        return True


class AdbTransport:
    """Run, push and pull on one Android device by serial."""

    def __init__(
        self,
        name: str,
        *,
        serial: str,
        adb_host: str = "127.0.0.1",
        adb_port: int = 5037,
        workdir: str = "",
        python: str = "python3",
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.name, self.serial = name, serial
        self.adb_host, self.adb_port = adb_host, adb_port
        self.workdir = workdir or DEFAULT_WORKDIR
        self.python = python
        self.connect_timeout_s = connect_timeout_s
        self.client = adbutils.AdbClient(host=adb_host, port=adb_port, socket_timeout=connect_timeout_s)
        self._device: adbutils.AdbDevice | None = None

    @classmethod
    def from_profile(cls, profile: Profile) -> AdbTransport:
        t = profile.transport
        assert t.serial is not None
        return cls(profile.name, serial=t.serial, adb_host=t.adb_host, adb_port=t.adb_port, workdir=t.workdir,
                   python=t.python, connect_timeout_s=t.connect_timeout_s)

    # -- the device -------------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.serial} via adb server {self.adb_host}:{self.adb_port}"

    def _server_up(self) -> None:
        try:
            socket.create_connection((self.adb_host, self.adb_port), timeout=self.connect_timeout_s).close()
            return
        except OSError as e:
            err = e
        if self.adb_host in _LOOPBACK:  # like `adb` itself: start a local server when none runs
            subprocess.run([adbutils.adb_path(), "-P", str(self.adb_port), "start-server"], capture_output=True,
                           timeout=30, check=False)
            try:
                socket.create_connection((self.adb_host, self.adb_port), timeout=self.connect_timeout_s).close()
                return
            except OSError as e2:
                err = e2
        raise DeviceError(self.name, f"no adb server at {self.adb_host}:{self.adb_port}: {err}",
                          hint=f"start one there with `adb -P {self.adb_port} start-server`")

    def state(self) -> str | None:
        """The server's word for the device ('device', 'offline', 'unauthorized', ...), None when not listed."""
        try:
            for info in self.client.list():
                if info.serial == self.serial:
                    return str(info.state)
        except (AdbError, OSError):
            return None
        return None

    def device(self) -> adbutils.AdbDevice:
        """The device, connecting a network serial (host:port) the server does not know yet."""
        if self._device is not None:
            return self._device
        self._server_up()
        state = self.state()
        if state is None and ":" in self.serial:
            try:
                self.client.connect(self.serial, timeout=self.connect_timeout_s)
            except (AdbError, OSError) as e:
                raise DeviceError(self.name, f"adb connect {self.serial} failed: {e}") from None
            for _ in range(50):
                state = self.state()
                if state == "device":
                    break
                time.sleep(0.1)
        if state != "device":
            raise DeviceError(self.name, f"device {self.where} is {state or 'not attached'}",
                              hint="check the cable / `adb devices` on the farm host; accept the USB debugging prompt")
        dev = self.client.device(self.serial)
        features = dev.get_features()
        if "shell_v2" not in features.split(","):
            raise DeviceError(self.name, f"device {self.serial} has no shell_v2 (Android 7+ needed for exit codes)")
        self._device = dev
        return dev

    def _lost_or(self, what: str, err: object, argv: list[str] | None = None, stdout: str = "",
                 stderr: str = "") -> DeviceError:
        state = self.state()
        if state != "device":
            self._device = None
            return DeviceLost(self.name, f"device {self.where} vanished ({state or 'no longer listed'}) {what}",
                              argv=argv, stdout=stdout, stderr=stderr)
        return DeviceError(self.name, f"{what}: {err}", argv=argv, stdout=stdout, stderr=stderr)

    # -- commands ---------------------------------------------------------------------------------------------

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        on_stdout_line: LineCallback | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        t0 = time.monotonic()
        dev = self.device()
        try:
            conn = dev.open_transport(timeout=self.connect_timeout_s)
            conn.send_command("shell,v2,raw:" + command_line(argv, env, wrap_sh=False))
            conn.check_okay()
        except (AdbError, OSError) as e:
            raise self._lost_or("while starting the command", e, argv) from None
        sock: socket.socket = conn.conn
        out, pending, buf = bytearray(), bytearray(), bytearray()
        marker = PidMarker()
        status: int | None = None
        timed_out = False
        deadline = t0 + timeout

        def take_stdout(data: bytes) -> None:
            out.extend(data)
            if on_stdout_line is None:
                return
            pending.extend(data)
            while (nl := pending.find(b"\n")) >= 0:
                on_stdout_line(pending[:nl].decode("utf-8", "replace").rstrip("\r"))
                del pending[: nl + 1]

        try:
            while status is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                sock.settimeout(min(1.0, remaining))
                try:
                    chunk = sock.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError as e:
                    raise self._lost_or("while the command ran", e, argv, out.decode("utf-8", "replace"),
                                        marker.stderr()) from None
                if not chunk:
                    # adbd always ends a v2 shell with an exit packet: a bare close is the device going away.
                    self._device = None
                    raise DeviceLost(self.name, f"device {self.where} dropped the command (stream closed without "
                                                f"an exit status; server says {self.state() or 'not listed'})",
                                     argv=argv, stdout=out.decode("utf-8", "replace"), stderr=marker.stderr())
                buf.extend(chunk)
                while len(buf) >= 5:
                    ident, length = buf[0], struct.unpack_from("<I", buf, 1)[0]
                    if len(buf) < 5 + length:
                        break
                    body = bytes(buf[5: 5 + length])
                    del buf[: 5 + length]
                    if ident == 1:
                        take_stdout(body)
                    elif ident == 2:
                        marker.feed(body)
                    elif ident == 3:
                        status = body[0] if body else 255
        finally:
            if timed_out:
                self._kill(marker.pid)
            conn.close()
        if pending and on_stdout_line is not None:
            on_stdout_line(pending.decode("utf-8", "replace"))
        stdout, stderr = out.decode("utf-8", "replace"), marker.stderr()
        if timed_out:
            return CommandResult(argv, -9, stdout, stderr, time.monotonic() - t0, timed_out=True)
        assert status is not None
        return CommandResult(argv, decode_exit(status), stdout, stderr, time.monotonic() - t0)

    def _kill(self, pid: int | None) -> None:
        if pid is None or self._device is None:
            return
        try:
            self._device.shell2(kill_script(pid), timeout=20)
        except (AdbError, OSError):
            pass

    def shell_ok(self, argv: list[str], timeout: float = 60) -> CommandResult:
        """Run argv; a non-zero exit is a DeviceError carrying what came back."""
        res = self.run(argv, timeout=timeout)
        if res.exit_code != 0:
            raise DeviceError(self.name, "command failed", argv=argv, exit_code=res.exit_code, stdout=res.stdout,
                              stderr=res.stderr)
        return res

    # -- files ------------------------------------------------------------------------------------------------

    def free_bytes(self, path: str) -> int | None:
        res = self.run(["df", "-Pk", path], timeout=30)
        return parse_df(res.stdout) if res.exit_code == 0 else None

    def push(self, local_path: str, remote_path: str, *, progress: Callable[[int, int], None] | None = None) -> None:
        size = os.path.getsize(local_path)
        parent = posixpath.dirname(remote_path) or "."
        self.shell_ok(["mkdir", "-p", parent])  # free space is deploy's question (facts); a failure asks df why
        tmp = posixpath.join(parent, f".{posixpath.basename(remote_path)}.part-{uuid.uuid4().hex[:8]}")
        dev = self.device()
        try:
            with open(local_path, "rb") as fh:
                dev.sync.push(_ProgressReader(fh, size, progress), tmp, mode=0o644)
        except (AdbError, OSError) as e:
            err = self._lost_or(f"while pushing {local_path} to {remote_path}", e)
            if isinstance(err, DeviceLost):
                raise err from None
            self.run(["rm", "-f", tmp], timeout=30)
            free = self.free_bytes(parent)
            if free is not None and free < size:
                raise self._no_space(local_path, remote_path, size, free) from None
            raise err from None
        res = self.run(["mv", "-f", tmp, remote_path], timeout=60)
        if res.exit_code != 0:
            self.run(["rm", "-f", tmp], timeout=30)
            raise DeviceError(self.name, f"cannot move pushed file into place at {remote_path}",
                              argv=res.argv, exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr)

    def _no_space(self, local: str, remote: str, size: int, free: int) -> DeviceError:
        return DeviceError(self.name, f"no space left on device for {os.path.basename(local)} at {remote}: "
                                      f"need {size} bytes, {free} free", hint="free space on the device")

    def pull(self, remote_path: str, local_path: str) -> None:
        dev = self.device()
        tmp = f"{local_path}.part-{os.getpid()}"
        try:
            dev.sync.pull_file(remote_path, tmp)
            os.replace(tmp, local_path)
        except (AdbError, OSError) as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise self._lost_or(f"while pulling {remote_path}", e) from None

    # -- facts ------------------------------------------------------------------------------------------------

    def facts(self) -> DeviceFacts:
        try:
            self.device()
        except DeviceError as e:
            return DeviceFacts(reachable=False, extra={"error": str(e)})
        script = ('w=$2; mkdir -p "$w" 2>/dev/null; echo "python=$(command -v "$1")"; '
                  'echo "model=$(getprop ro.product.model 2>/dev/null)"; '
                  'echo "android=$(getprop ro.build.version.release 2>/dev/null)"; df -Pk "$w" | tail -n 1')
        res = self.run(["sh", "-c", script, "sh", self.python, self.workdir], timeout=60)
        kv: dict[str, Any] = dict(line.split("=", 1) for line in res.stdout.splitlines()
                                  if "=" in line and " " not in line.split("=")[0])
        return DeviceFacts(reachable=True, python=kv.get("python") or None, workdir=self.workdir,
                           free_storage_bytes=parse_df(res.stdout),
                           extra={"model": kv.get("model", ""), "android": kv.get("android", ""),
                                  "serial": self.serial, "adb_server": f"{self.adb_host}:{self.adb_port}"})

    def close(self) -> None:
        self._device = None
