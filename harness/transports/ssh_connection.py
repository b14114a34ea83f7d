"""One SSH connection per device (paramiko), made again when it died: TCP with keepalives tuned to notice a
silent peer, host keys checked (ssh_hostkeys), an optional jump host, and the GCM cipher first (paramiko's
default order puts CTR+HMAC first, which is about half as fast)."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

import paramiko

from harness.errors import DeviceError, DeviceLost
from harness.transports.ssh_hostkeys import RejectUnknown, TrustOnFirstUse, mismatch

GCM = "aes128-gcm@openssh.com"


def _fast_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    t = paramiko.Transport(sock, **kwargs)
    opts = t.get_security_options()
    if GCM in t._cipher_info:  # noqa: SLF001 - the only way to ask paramiko which ciphers it has
        opts.ciphers = (GCM, *[c for c in opts.ciphers if c != GCM])
    return t


def tcp_socket(host: str, port: int, timeout: float, keepalive: float) -> socket.socket:
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


@dataclass
class SSHTarget:
    """Where and as whom to connect, and how patiently."""

    device: str
    host: str
    port: int
    user: str
    identity_file: str | None
    known_hosts: str
    trust_on_first_use: bool
    jump: str | None
    connect_timeout_s: float
    keepalive_s: float


class SSHConnection:
    """The live paramiko transport to one device, connecting (again) when there is none."""

    def __init__(self, target: SSHTarget) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._jump_client: paramiko.SSHClient | None = None
        self.sftp: paramiko.SFTPClient | None = None

    def _new_client(self, host: str, port: int, user: str, sock: Any) -> paramiko.SSHClient:
        g = self.target
        client = paramiko.SSHClient()
        if os.path.exists(g.known_hosts):
            client.load_host_keys(g.known_hosts)
        policy = TrustOnFirstUse if g.trust_on_first_use else RejectUnknown
        client.set_missing_host_key_policy(policy(g.device, g.known_hosts))
        where = f"{user}@{host}:{port}"
        try:
            client.connect(
                host, port, username=user, key_filename=g.identity_file, allow_agent=True,
                look_for_keys=g.identity_file is None, sock=sock, timeout=g.connect_timeout_s,
                banner_timeout=g.connect_timeout_s, auth_timeout=g.connect_timeout_s,
                transport_factory=_fast_transport,
            )
        except paramiko.BadHostKeyException as e:
            client.close()
            raise mismatch(g.device, e, host, port, g.known_hosts) from None
        except paramiko.AuthenticationException as e:
            client.close()
            how = f"key {g.identity_file}" if g.identity_file else "ssh-agent / default keys"
            raise DeviceError(g.device, f"authentication as {where} failed with {how}: {e}") from None
        except DeviceError:
            client.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            raise DeviceError(g.device, f"cannot connect to {where}: {e}") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(max(1, int(g.keepalive_s)))  # also what makes a dead link noticed
        return client

    def get(self) -> paramiko.Transport:
        """The live transport, connecting (again) when there is none."""
        with self._lock:
            if self.alive():
                assert self._client is not None
                t = self._client.get_transport()
                assert t is not None
                return t
            self._drop()
            g = self.target
            try:
                sock = self._jump_channel() if g.jump else self._tcp(g.host, g.port)
                self._client = self._new_client(g.host, g.port, g.user, sock)
            except DeviceError:
                self._drop()  # no half-open jump connection left behind
                raise
            t = self._client.get_transport()
            assert t is not None
            return t

    def _jump_channel(self) -> paramiko.Channel:
        """A direct-tcpip channel to the device through the jump host (what `ssh -J` does)."""
        g = self.target
        assert g.jump is not None
        juser, jhost, jport = parse_jump(g.jump, g.user)
        self._jump_client = self._new_client(jhost, jport, juser, self._tcp(jhost, jport))
        jt = self._jump_client.get_transport()
        assert jt is not None
        try:
            return jt.open_channel("direct-tcpip", (g.host, g.port), ("127.0.0.1", 0), timeout=g.connect_timeout_s)
        except (paramiko.SSHException, OSError) as e:
            raise DeviceError(g.device, f"jump host {jhost}:{jport} cannot reach {g.host}:{g.port}: {e}") from None

    def _tcp(self, host: str, port: int) -> socket.socket:
        try:
            return tcp_socket(host, port, self.target.connect_timeout_s, self.target.keepalive_s)
        except OSError as e:
            raise DeviceError(self.target.device, f"cannot reach {host}:{port}: {e.strerror or e}") from None

    def _drop(self) -> None:
        for c in (self.sftp, self._client, self._jump_client):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing a dead connection may fail in many ways
                    pass
        self.sftp = self._client = self._jump_client = None

    def alive(self) -> bool:
        t = self._client.get_transport() if self._client else None
        return t is not None and t.is_active()

    def lost(self, what: str, argv: list[str] | None, stdout: str = "", stderr: str = "") -> DeviceLost:
        """The error for a connection found dead; it is dropped, so the next call connects afresh."""
        with self._lock:
            self._drop()
        g = self.target
        return DeviceLost(g.device, f"connection to {g.host}:{g.port} lost {what}", argv=argv, stdout=stdout,
                          stderr=stderr)

    def close(self) -> None:
        with self._lock:
            self._drop()
