"""The adb transport (adbutils): Android phones, through an adb server that may run on another farm host.

Commands go over shell v2 (separate stdout and stderr, a real exit code), read as they arrive; pushes go
through the sync service to a temporary name and are moved into place.

A device whose link dies silently (Wi-Fi adb, a network cable) stays `device` in the server's list for many
minutes, and a stream to it simply goes quiet. So every adb call here is bounded by a socket timeout, and a
command that has been silent for keepalive_s is checked with a ping (a sync STAT, which adbd answers itself
without starting a process); no sign of life for keepalive_s x keepalive_count makes it DeviceLost. Once lost,
a transport refuses at once instead of waiting again (killing on a dead link never blocks).
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
from typing import TYPE_CHECKING

import adbutils
from adbutils.errors import AdbError

from harness.errors import DeviceError, DeviceLost
from harness.transports.base import CommandResult, DeviceFacts, LineCallback
from harness.transports.remote_shell import (
    LineSplitter,
    PidMarker,
    ShellDevice,
    command_line,
    decode_exit,
    facts_script,
    kill_script,
    parse_df,
    parse_facts,
)

if TYPE_CHECKING:
    from harness.profiles import Profile

SYNC_CHUNK = 64 * 1024  # the sync protocol's maximum DATA size
DEFAULT_WORKDIR = "/data/local/tmp/edgefarm"  # writable by the shell user on every Android
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ERRORS = (AdbError, OSError)  # adbutils' AdbTimeout is an AdbError; socket timeouts are OSErrors


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


class AdbTransport(ShellDevice):
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
        keepalive_s: float = 10.0,
        keepalive_count: int = 3,
    ) -> None:
        """keepalive_s: a silent command is pinged this often; keepalive_count missed: the device is lost."""
        super().__init__()
        self.name, self.serial = name, serial
        self.adb_host, self.adb_port = adb_host, adb_port
        self.workdir = workdir or DEFAULT_WORKDIR
        self.python = python
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.dead_after_s = keepalive_s * keepalive_count
        # socket_timeout bounds every server round trip adbutils makes for us (its own default is 600 s).
        self.client = adbutils.AdbClient(host=adb_host, port=adb_port, socket_timeout=connect_timeout_s)
        self._device: adbutils.AdbDevice | None = None
        self._lost: str | None = None  # why the device was declared lost; then every call refuses at once

    @classmethod
    def from_profile(cls, profile: Profile) -> AdbTransport:
        t = profile.transport
        assert t.serial is not None
        return cls(profile.name, serial=t.serial, adb_host=t.adb_host, adb_port=t.adb_port, workdir=t.workdir,
                   python=t.python, connect_timeout_s=t.connect_timeout_s,
                   keepalive_s=t.keepalive_s)

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
        except _ERRORS:
            return None
        return None

    def _refuse_if_lost(self, argv: list[str] | None = None) -> None:
        if self._lost is not None:
            raise DeviceLost(self.name, f"device {self.where} was lost earlier ({self._lost})", argv=argv)

    def device(self) -> adbutils.AdbDevice:
        """The device, connecting a network serial (host:port) the server does not know yet."""
        self._refuse_if_lost()
        if self._device is not None:
            return self._device
        self._server_up()
        state = self.state()
        if state is None and ":" in self.serial:
            try:
                self.client.connect(self.serial, timeout=self.connect_timeout_s)
            except _ERRORS as e:
                raise DeviceError(self.name, f"adb connect {self.serial} failed: {e}") from None
            deadline = time.monotonic() + 5.0
            while state != "device" and time.monotonic() < deadline:
                time.sleep(0.1)  # the server finishes the handshake on its own thread: poll, bounded
                state = self.state()
        if state != "device":
            raise DeviceError(self.name, f"device {self.where} is {state or 'not attached'}",
                              hint="check the cable / `adb devices` on the farm host; accept the USB debugging prompt")
        dev = self.client.device(self.serial)
        try:
            features = dev.get_features()
        except _ERRORS as e:
            raise DeviceError(self.name, f"cannot ask the adb server about {self.where}: {e}") from None
        if "shell_v2" not in features.split(","):
            raise DeviceError(self.name, f"device {self.serial} has no shell_v2 (Android 7+ needed for exit codes)")
        self._device = dev
        return dev

    def ping(self, timeout: float) -> bool:
        """Whether the device itself answers within timeout (a sync STAT of /: adbd answers it without a process).

        The server's device list cannot tell: it keeps a silently dead TCP device as `device` for minutes.
        """
        dev = self._device or self.client.device(self.serial)
        try:
            c = dev.open_transport(timeout=timeout)
        except _ERRORS:
            return False
        try:
            c.conn.settimeout(timeout)
            c.send_command("sync:")
            c.check_okay()
            c.conn.sendall(b"STAT" + struct.pack("<I", 1) + b"/")
            return bytes(c.read(16))[:4] == b"STAT"
        except _ERRORS:
            return False
        finally:
            c.close()

    def _declare_lost(self, why: str, argv: list[str] | None = None, stdout: str = "",
                      stderr: str = "") -> DeviceLost:
        self._lost = why
        self._device = None
        return DeviceLost(self.name, f"device {self.where} {why}", argv=argv, stdout=stdout, stderr=stderr)

    def _lost_or(self, what: str, err: object, argv: list[str] | None = None, stdout: str = "",
                 stderr: str = "", silent_s: float = 0.0) -> DeviceError:
        """After a failed adb call: DeviceLost when the device is gone (unlisted, or no answer to a ping
        within what is left of the dead-link bound), else a DeviceError carrying err."""
        state = self.state()
        if state != "device":
            return self._declare_lost(f"vanished ({state or 'no longer listed'}) {what}", argv, stdout, stderr)
        if not self.ping(max(self.keepalive_s, self.dead_after_s - silent_s)):
            return self._declare_lost(f"stopped answering (no reply for {self.dead_after_s:g} s; the adb server "
                                      f"still lists it) {what}", argv, stdout, stderr)
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
        return self._run(argv, timeout, on_stdout_line, env, internal=False)

    def _run(self, argv: list[str], timeout: float, on_stdout_line: LineCallback | None,
             env: dict[str, str] | None, *, internal: bool) -> CommandResult:
        """internal: a kill of ours, which neither a cancel stops nor a timeout kills again."""
        t0 = time.monotonic()
        self._refuse_if_lost(argv)
        dev = self.device()
        marker = PidMarker()
        key = None if internal else self._started(marker)
        lost = False
        try:
            try:
                conn = dev.open_transport(timeout=self.connect_timeout_s)
                conn.send_command("shell,v2,raw:" + command_line(argv, env, wrap_sh=False))
                conn.check_okay()
            except _ERRORS as e:
                raise self._lost_or("while starting the command", e, argv,
                                    silent_s=time.monotonic() - t0) from None
            return self._pump(conn, argv, t0, timeout, marker, LineSplitter(on_stdout_line), internal)
        except DeviceLost:
            lost = True
            raise
        finally:
            if key is not None:
                self._finished(key, lost)

    def _pump(self, conn: adbutils.AdbConnection, argv: list[str], t0: float, timeout: float, marker: PidMarker,
              out: LineSplitter, internal: bool) -> CommandResult:
        """Read shell v2 packets until the exit packet, the deadline, a cancel, or the device's silence."""
        sock: socket.socket = conn.conn
        buf = bytearray()
        status: int | None = None
        timed_out = cancelled = False
        deadline = t0 + timeout
        last_life = last_ping = time.monotonic()
        try:
            while status is None:
                now = time.monotonic()
                if not internal and self.stop_reading(marker):  # cancel() kills the session itself
                    cancelled = True
                    break
                if now >= deadline:
                    timed_out = True
                    break
                if now - last_life >= self.keepalive_s and now - last_ping >= self.keepalive_s:
                    last_ping = now
                    if self.ping(self.keepalive_s):
                        last_life = time.monotonic()
                    elif time.monotonic() - last_life >= self.dead_after_s:
                        raise self._declare_lost(
                            f"stopped answering while the command ran (silent for {time.monotonic() - last_life:.0f}"
                            f" s, no reply to pings; the adb server still lists it)", argv, out.text(),
                            marker.stderr())
                    continue
                sock.settimeout(max(0.05, min(1.0, deadline - now)))
                try:
                    chunk = sock.recv(1 << 16)
                except TimeoutError:
                    continue
                except OSError as e:
                    raise self._lost_or("while the command ran", e, argv, out.text(), marker.stderr()) from None
                if not chunk:
                    # adbd always ends a v2 shell with an exit packet: a bare close is the device going away.
                    raise self._declare_lost(f"dropped the command (stream closed without an exit status; server "
                                             f"says {self.state() or 'not listed'})", argv, out.text(),
                                             marker.stderr())
                last_life = time.monotonic()
                buf.extend(chunk)
                while len(buf) >= 5:
                    ident, length = buf[0], struct.unpack_from("<I", buf, 1)[0]
                    if len(buf) < 5 + length:
                        break
                    body = bytes(buf[5: 5 + length])
                    del buf[: 5 + length]
                    if ident == 1:
                        out.feed(body)
                    elif ident == 2:
                        marker.feed(body)
                    elif ident == 3:
                        status = body[0] if body else 255
        finally:
            if timed_out and not internal:
                self._kill_remote(marker.pid, 20.0)
            conn.close()
        out.flush()
        if timed_out or cancelled:
            return CommandResult(argv, -9, out.text(), marker.stderr(), time.monotonic() - t0, timed_out=timed_out,
                                 cancelled=cancelled)
        assert status is not None
        # A kill from cancel() may end the command before this loop saw the flag: it was still cancelled.
        return CommandResult(argv, decode_exit(status), out.text(), marker.stderr(), time.monotonic() - t0,
                             cancelled=self.cancelled and not internal)

    def _kill_remote(self, pid: int | None, timeout: float) -> bool:
        """Kill a command's session through a second stream, bounded; at once False on a lost device."""
        if pid is None:
            return True
        if self._lost is not None:
            return False
        try:
            res = self._run(["sh", "-c", kill_script(pid)], timeout, None, None, internal=True)
        except DeviceError:
            return False
        return res.exit_code == 0

    def shell_ok(self, argv: list[str], timeout: float = 60) -> CommandResult:
        """Run argv; a non-zero exit is a DeviceError carrying what came back."""
        res = self.run(argv, timeout=timeout)
        if res.exit_code != 0:
            raise DeviceError(self.name, "command failed", argv=argv, exit_code=res.exit_code, stdout=res.stdout,
                              stderr=res.stderr)
        return res

    # -- files ------------------------------------------------------------------------------------------------

    def push(self, local_path: str, remote_path: str, *, progress: Callable[[int, int], None] | None = None) -> None:
        size = os.path.getsize(local_path)
        parent = posixpath.dirname(remote_path) or "."
        self.shell_ok(["mkdir", "-p", parent])  # free space is deploy's question (facts); a failure asks df why
        tmp = posixpath.join(parent, f".{posixpath.basename(remote_path)}.part-{uuid.uuid4().hex[:8]}")
        dev = self.device()
        t0 = time.monotonic()
        try:
            # Every sync read and write is bounded by the client's socket timeout: a dead link raises here.
            with open(local_path, "rb") as fh:
                dev.sync.push(_ProgressReader(fh, size, progress), tmp, mode=0o644)
        except _ERRORS as e:
            err = self._lost_or(f"while pushing {local_path} to {remote_path}", e,
                                silent_s=min(self.connect_timeout_s, time.monotonic() - t0))
            if isinstance(err, DeviceLost):
                raise err from None
            self.run(["rm", "-f", tmp], timeout=30)
            raise self.failed_push(local_path, remote_path, size, err) from None
        res = self.run(["mv", "-f", tmp, remote_path], timeout=60)
        if res.exit_code != 0:
            self.run(["rm", "-f", tmp], timeout=30)
            raise DeviceError(self.name, f"cannot move pushed file into place at {remote_path}",
                              argv=res.argv, exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr)

    def pull(self, remote_path: str, local_path: str) -> None:
        dev = self.device()
        tmp = f"{local_path}.part-{os.getpid()}"
        try:
            dev.sync.pull_file(remote_path, tmp)
            os.replace(tmp, local_path)
        except _ERRORS as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise self._lost_or(f"while pulling {remote_path}", e) from None

    # -- facts ------------------------------------------------------------------------------------------------

    def facts(self) -> DeviceFacts:
        try:
            self.device()
        except DeviceLost:
            raise
        except DeviceError as e:
            return DeviceFacts(reachable=False, extra={"error": str(e)})
        script = facts_script('echo "model=$(getprop ro.product.model 2>/dev/null)"; '
                              'echo "android=$(getprop ro.build.version.release 2>/dev/null)"; ')
        res = self.run(["sh", "-c", script, "sh", self.python, self.workdir], timeout=60)
        kv = parse_facts(res.stdout)
        return DeviceFacts(reachable=True, python=kv.get("python") or None, workdir=self.workdir,
                           free_storage_bytes=parse_df(res.stdout),
                           extra={"model": kv.get("model", ""), "android": kv.get("android", ""),
                                  "serial": self.serial, "adb_server": f"{self.adb_host}:{self.adb_port}",
                                  "stale_parts_removed": kv.get("stale_parts", "0")})

    def close(self) -> None:
        self._device = None
