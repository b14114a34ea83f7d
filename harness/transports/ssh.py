"""The SSH transport (paramiko): ARM boards and laptops.

One connection per device, reused for every command and transfer; host keys checked against known_hosts
(trust on first use only when the profile asks, and then said loudly); an optional jump host; the GCM
cipher first (paramiko's default order puts CTR+HMAC first, which is about half as fast); keepalives.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import os
import posixpath
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from harness.errors import DeviceError, DeviceLost
from harness.transports.base import CommandResult, DeviceFacts, LineCallback
from harness.transports.remote_shell import (
    PidMarker,
    command_line,
    decode_exit,
    kill_script,
    parse_df,
)

if TYPE_CHECKING:
    from harness.profiles import Profile

log = logging.getLogger(__name__)

GCM = "aes128-gcm@openssh.com"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256:... form of a host key's fingerprint."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _known_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _RejectUnknown(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """The default: an unknown host key is refused, with the way to trust it in the message."""

    def __init__(self, device: str, known_hosts: str) -> None:
        self.device, self.known_hosts = device, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise DeviceError(
            self.device,
            f"host key of {hostname} ({key.get_name()} {fingerprint(key)}) is not in {self.known_hosts}; refusing",
            hint="check the fingerprint on the device, then add it (ssh-keyscan) or set transport.trust_on_first_use",
        )


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Accept an unknown key once, warn naming host and fingerprint, and record it in known_hosts."""

    def __init__(self, device: str, known_hosts: str) -> None:
        self.device, self.known_hosts = device, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        log.warning(
            "device '%s': TRUSTING UNKNOWN HOST KEY of %s on first use: %s %s; recorded in %s "
            "(verify this fingerprint on the device)", self.device, hostname, key.get_name(), fingerprint(key),
            self.known_hosts,
        )
        path = Path(self.known_hosts)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def _fast_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    t = paramiko.Transport(sock, **kwargs)
    opts = t.get_security_options()
    if GCM in t._cipher_info:  # noqa: SLF001 - the only way to ask paramiko which ciphers it has
        opts.ciphers = (GCM, *[c for c in opts.ciphers if c != GCM])
    return t


def _tcp_socket(host: str, port: int, timeout: float, keepalive: float) -> socket.socket:
    """A TCP connection that notices a silent peer (pulled cable, powered-off board) after ~4 x keepalive."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(keepalive)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(keepalive / 2)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # our SSH keepalives unacknowledged this long: the peer is gone
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(3000 * keepalive))
    return s


def parse_jump(spec: str, default_user: str) -> tuple[str, str, int]:
    """'user@host:port' (user and port optional) -> (user, host, port)."""
    user, _, hostport = spec.rpartition("@")
    host, _, port = hostport.partition(":")
    if not host or (port and not port.isdigit()):
        raise DeviceError("jump", f"jump host '{spec}' is not of the form user@host:port")
    return user or default_user, host, int(port or 22)


class SSHTransport:
    """Run, push and pull on one device over SSH."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int = 22,
        user: str | None = None,
        identity_file: str | None = None,
        known_hosts: str | None = None,
        trust_on_first_use: bool = False,
        jump: str | None = None,
        connect_timeout_s: float = 10.0,
        workdir: str = "",
        python: str = "python3",
        keepalive_s: float = 10.0,
    ) -> None:
        """keepalive_s: SSH keepalive interval; a device silent for ~4 x that is lost (DeviceLost)."""
        self.name = name
        self.host, self.port = host, port
        self.user = user or getpass.getuser()
        self.identity_file = os.path.expanduser(identity_file) if identity_file else None
        self.known_hosts = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
        self.tofu = trust_on_first_use
        self.jump = jump
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.workdir = workdir
        self.python = python
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._jump_client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @classmethod
    def from_profile(cls, profile: Profile) -> SSHTransport:
        t = profile.transport
        assert t.host is not None
        return cls(profile.name, host=t.host, port=t.port, user=t.user, identity_file=t.identity_file,
                   known_hosts=t.known_hosts, trust_on_first_use=t.trust_on_first_use, jump=t.jump,
                   connect_timeout_s=t.connect_timeout_s, workdir=t.workdir, python=t.python)

    # -- connection -------------------------------------------------------------------------------------------

    def _new_client(self, host: str, port: int, user: str, sock: Any) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if os.path.exists(self.known_hosts):
            client.load_host_keys(self.known_hosts)
        policy = _TrustOnFirstUse if self.tofu else _RejectUnknown
        client.set_missing_host_key_policy(policy(self.name, self.known_hosts))
        where = f"{user}@{host}:{port}"
        try:
            client.connect(
                host, port, username=user, key_filename=self.identity_file, allow_agent=True,
                look_for_keys=self.identity_file is None, sock=sock, timeout=self.connect_timeout_s,
                banner_timeout=self.connect_timeout_s, auth_timeout=self.connect_timeout_s,
                transport_factory=_fast_transport,
            )
        except paramiko.BadHostKeyException as e:
            client.close()
            raise DeviceError(self.name, f"host key of {where} CHANGED: got {fingerprint(e.key)}, known_hosts has "
                                         f"{fingerprint(e.expected_key)}; refusing to connect",
                              hint=f"if the device was re-imaged, remove its line from {self.known_hosts}") from None
        except paramiko.AuthenticationException as e:
            client.close()
            how = f"key {self.identity_file}" if self.identity_file else "ssh-agent / default keys"
            raise DeviceError(self.name, f"authentication as {where} failed with {how}: {e}") from None
        except DeviceError:
            client.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            raise DeviceError(self.name, f"cannot connect to {where}: {e}") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(max(1, int(self.keepalive_s)))  # also what makes a dead link noticed
        return client

    def _connected(self) -> paramiko.Transport:
        """The live transport, connecting (again) when there is none."""
        with self._lock:
            if self._alive():
                assert self._client is not None
                t = self._client.get_transport()
                assert t is not None
                return t
            self._drop()
            try:
                sock = self._jump_channel() if self.jump else self._tcp(self.host, self.port)
                self._client = self._new_client(self.host, self.port, self.user, sock)
            except DeviceError:
                self._drop()  # no half-open jump connection left behind
                raise
            t = self._client.get_transport()
            assert t is not None
            return t

    def _jump_channel(self) -> paramiko.Channel:
        """A direct-tcpip channel to the device through the jump host (what `ssh -J` does)."""
        assert self.jump is not None
        juser, jhost, jport = parse_jump(self.jump, self.user)
        self._jump_client = self._new_client(jhost, jport, juser, self._tcp(jhost, jport))
        jt = self._jump_client.get_transport()
        assert jt is not None
        try:
            return jt.open_channel("direct-tcpip", (self.host, self.port), ("127.0.0.1", 0),
                                   timeout=self.connect_timeout_s)
        except (paramiko.SSHException, OSError) as e:
            raise DeviceError(self.name, f"jump host {jhost}:{jport} cannot reach {self.host}:{self.port}: {e}") from None

    def _tcp(self, host: str, port: int) -> socket.socket:
        try:
            return _tcp_socket(host, port, self.connect_timeout_s, self.keepalive_s)
        except OSError as e:
            raise DeviceError(self.name, f"cannot reach {host}:{port}: {e.strerror or e}") from None

    def _drop(self) -> None:
        for c in (self._sftp, self._client, self._jump_client):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
                    pass
        self._sftp = self._client = self._jump_client = None

    def _alive(self) -> bool:
        t = self._client.get_transport() if self._client else None
        return t is not None and t.is_active()

    def _lost(self, what: str, argv: list[str] | None, stdout: str = "", stderr: str = "") -> DeviceLost:
        return DeviceLost(self.name, f"connection to {self.host}:{self.port} lost {what}", argv=argv,
                          stdout=stdout, stderr=stderr)

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
        transport = self._connected()
        try:
            chan = transport.open_session(timeout=self.connect_timeout_s)
            chan.exec_command(command_line(argv, env, wrap_sh=True))
        except (paramiko.SSHException, OSError, EOFError) as e:
            if not self._alive():
                raise self._lost("while starting the command", argv) from None
            raise DeviceError(self.name, f"cannot start command: {e}", argv=argv) from None
        out = bytearray()
        pending = bytearray()
        marker = PidMarker()
        timed_out = False

        def take_stdout(data: bytes) -> None:
            out.extend(data)
            if on_stdout_line is None:
                return
            pending.extend(data)
            while (nl := pending.find(b"\n")) >= 0:
                on_stdout_line(pending[:nl].decode("utf-8", "replace").rstrip("\r"))
                del pending[: nl + 1]

        deadline = t0 + timeout
        with chan:
            while True:
                while chan.recv_ready():
                    take_stdout(chan.recv(1 << 16))
                while chan.recv_stderr_ready():
                    marker.feed(chan.recv_stderr(1 << 16))
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                now = time.monotonic()
                if now >= deadline:
                    timed_out = True
                    self._kill(marker.pid)
                    break
                select.select([chan], [], [], min(1.0, deadline - now))
            if pending and on_stdout_line is not None:
                on_stdout_line(pending.decode("utf-8", "replace"))
            stdout, stderr = out.decode("utf-8", "replace"), marker.stderr()
            if timed_out:
                return CommandResult(argv, -9, stdout, stderr, time.monotonic() - t0, timed_out=True)
            status = chan.recv_exit_status()
            if status == -1 and not self._alive():
                raise self._lost("while the command ran", argv, stdout, stderr)
        return CommandResult(argv, decode_exit(status), stdout, stderr, time.monotonic() - t0)

    def _kill(self, pid: int | None) -> None:
        """Kill the remote command's session (agent and model child) through a second channel."""
        if pid is None or not self._alive():
            return
        try:
            transport = self._connected()
            chan = transport.open_session(timeout=self.connect_timeout_s)
            chan.exec_command(kill_script(pid))
            chan.settimeout(15)
            chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as e:
            log.warning("device '%s': could not kill remote process %s: %s", self.name, pid, e)

    # -- files ------------------------------------------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        transport = self._connected()
        chan = self._sftp.get_channel() if self._sftp is not None else None
        if chan is None or chan.closed:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            except (paramiko.SSHException, OSError, EOFError) as e:
                if not self._alive():
                    raise self._lost("opening SFTP", None) from None
                raise DeviceError(self.name, f"SFTP is not available: {e}") from None
        assert self._sftp is not None
        return self._sftp

    def _mkdirs(self, sftp: paramiko.SFTPClient, path: str) -> None:
        missing: list[str] = []
        p = path
        while p not in ("", "/"):
            try:
                sftp.stat(p)
                break
            except FileNotFoundError:
                missing.append(p)
                p = posixpath.dirname(p)
        for d in reversed(missing):
            try:
                sftp.mkdir(d)
            except OSError as e:
                raise DeviceError(self.name, f"cannot create directory {d}: {e}") from None

    def free_bytes(self, path: str) -> int | None:
        """Free bytes on the filesystem holding path (df), None where df says nothing useful."""
        res = self.run(["df", "-Pk", path], timeout=30)
        return parse_df(res.stdout) if res.exit_code == 0 else None

    def push(self, local_path: str, remote_path: str, *, progress: Callable[[int, int], None] | None = None) -> None:
        """SFTP to a temporary name beside the target, then rename; nothing half-written under the final name.

        Free space is not asked first (deploy does that with facts()); a failed write asks df to say why.
        """
        size = os.path.getsize(local_path)
        parent = posixpath.dirname(remote_path) or "."
        sftp = self._sftp_client()
        tmp = posixpath.join(parent, f".{posixpath.basename(remote_path)}.part-{uuid.uuid4().hex[:8]}")
        try:
            self._mkdirs(sftp, parent)
            self._put(sftp, local_path, tmp, size, progress)
            sftp.posix_rename(tmp, remote_path)
        except (paramiko.SSHException, EOFError, OSError) as e:
            if not self._alive():
                raise self._lost(f"while pushing {local_path} to {remote_path}", None) from None
            try:
                sftp.remove(tmp)
            except OSError:
                pass
            free = self.free_bytes(parent)
            if free is not None and free < size:
                raise self._no_space(local_path, remote_path, size, free) from None
            raise DeviceError(self.name, f"push of {local_path} to {remote_path} failed: {e}") from None

    @staticmethod
    def _put(sftp: paramiko.SFTPClient, local: str, remote: str, size: int,
             progress: Callable[[int, int], None] | None) -> None:
        # paramiko writes 32 KiB per request, which with its 29-byte header takes two SSH packets each.
        # Requests that fill whole packets (eight: ~255 KiB, under OpenSSH's 256 KiB limit) halve the
        # packets and cut the requests eightfold: most of the gap to scp on a CPU-bound link.
        packet = sftp.sock.out_max_packet_size - 64  # what paramiko's channel puts in one packet
        chunk = max(32768, min(8 * packet - 29, 255 * 1024))
        done = 0
        with open(local, "rb") as src, sftp.open(remote, "wb") as dst:
            dst.MAX_REQUEST_SIZE = chunk
            dst.set_pipelined(True)
            while data := src.read(chunk):
                dst.write(data)
                done += len(data)
                if progress is not None:
                    progress(done, size)
        got = sftp.stat(remote).st_size
        if got != size:
            raise OSError(f"size mismatch after transfer: {got} != {size}")

    def _no_space(self, local: str, remote: str, size: int, free: int) -> DeviceError:
        return DeviceError(self.name, f"no space left on device for {os.path.basename(local)} at {remote}: "
                                      f"need {size} bytes, {free} free", hint="free space on the device")

    def pull(self, remote_path: str, local_path: str) -> None:
        sftp = self._sftp_client()
        tmp = f"{local_path}.part-{os.getpid()}"
        try:
            sftp.get(remote_path, tmp)
            os.replace(tmp, local_path)
        except (paramiko.SSHException, EOFError, OSError) as e:
            Path(tmp).unlink(missing_ok=True)
            if not self._alive():
                raise self._lost(f"while pulling {remote_path}", None) from None
            raise DeviceError(self.name, f"pull of {remote_path} failed: {e}") from None

    # -- facts ------------------------------------------------------------------------------------------------

    def facts(self) -> DeviceFacts:
        """Reachability, python, work dir and its free storage in one round trip."""
        try:
            self._connected()
        except DeviceError as e:
            return DeviceFacts(reachable=False, extra={"error": str(e)})
        script = (
            'w=${2:-$HOME/.edgefarm}; mkdir -p "$w" 2>/dev/null; echo "workdir=$w"; '
            'echo "python=$(command -v "$1")"; echo "uname=$(uname -sm)"; df -Pk "$w" | tail -n 1'
        )
        res = self.run(["/bin/sh", "-c", script, "sh", self.python, self.workdir], timeout=60)
        kv = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line and " " not in line.split("=")[0])
        return DeviceFacts(
            reachable=True, python=kv.get("python") or None, workdir=kv.get("workdir", self.workdir),
            free_storage_bytes=parse_df(res.stdout), extra={"uname": kv.get("uname", ""),
                                                            "address": f"{self.user}@{self.host}:{self.port}"},
        )

    def close(self) -> None:
        with self._lock:
            self._drop()
