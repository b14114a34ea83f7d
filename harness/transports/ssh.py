"""The SSH transport (paramiko): ARM boards and laptops.

One connection per device (ssh_connection), reused for every command and transfer; host keys checked against
known_hosts (ssh_hostkeys); keepalives that make a silent link DeviceLost; commands in a POSIX shell
(remote_shell), killed again by session on timeout or cancel.
"""

from __future__ import annotations

import getpass
import logging
import os
import posixpath
import select
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from harness.errors import DeviceError, DeviceLost, HostKeyMismatch
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
from harness.transports.ssh_connection import GCM, SSHConnection, SSHTarget
from harness.transports.ssh_hostkeys import fingerprint

if TYPE_CHECKING:
    from harness.profiles import Profile

__all__ = ["GCM", "SSHTransport", "fingerprint"]

log = logging.getLogger(__name__)


class SSHTransport(ShellDevice):
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
        super().__init__()
        self.name = name
        self.host, self.port = host, port
        self.user = user or getpass.getuser()
        self.connect_timeout_s = connect_timeout_s
        self.workdir = workdir
        self.python = python
        self.conn = SSHConnection(SSHTarget(
            device=name, host=host, port=port, user=self.user,
            identity_file=os.path.expanduser(identity_file) if identity_file else None,
            known_hosts=os.path.expanduser(known_hosts or "~/.ssh/known_hosts"),
            trust_on_first_use=trust_on_first_use, jump=jump, connect_timeout_s=connect_timeout_s,
            keepalive_s=keepalive_s))

    @classmethod
    def from_profile(cls, profile: Profile) -> SSHTransport:
        t = profile.transport
        assert t.host is not None
        return cls(profile.name, host=t.host, port=t.port, user=t.user, identity_file=t.identity_file,
                   known_hosts=t.known_hosts, trust_on_first_use=t.trust_on_first_use, jump=t.jump,
                   connect_timeout_s=t.connect_timeout_s, workdir=t.workdir, python=t.python,
                   keepalive_s=t.keepalive_s)

    @property
    def known_hosts(self) -> str:
        return self.conn.target.known_hosts

    # -- commands ---------------------------------------------------------------------------------------------

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        on_stdout_line: LineCallback | None = None,
        env: dict[str, str] | None = None,
    ) -> CommandResult:
        marker = PidMarker()
        key = self._started(marker)
        lost = False
        try:
            return self._run(argv, timeout, on_stdout_line, env, marker)
        except DeviceLost:
            lost = True
            raise
        finally:
            self._finished(key, lost)

    def _run(self, argv: list[str], timeout: float, on_stdout_line: LineCallback | None,
             env: dict[str, str] | None, marker: PidMarker) -> CommandResult:
        t0 = time.monotonic()
        transport = self.conn.get()
        try:
            chan = transport.open_session(timeout=self.connect_timeout_s)
            chan.exec_command(command_line(argv, env, wrap_sh=True))
        except (paramiko.SSHException, OSError, EOFError) as e:
            if not self.conn.alive():
                raise self.conn.lost("while starting the command", argv) from None
            raise DeviceError(self.name, f"cannot start command: {e}", argv=argv) from None
        out = LineSplitter(on_stdout_line)
        timed_out = cancelled = False
        deadline = t0 + timeout
        with chan:
            while True:
                while chan.recv_ready():
                    out.feed(chan.recv(1 << 16))
                while chan.recv_stderr_ready():
                    marker.feed(chan.recv_stderr(1 << 16))
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                now = time.monotonic()
                if self.stop_reading(marker):  # cancel() kills the session itself
                    cancelled = True
                    break
                if now >= deadline:
                    timed_out = True
                    self._kill_remote(marker.pid, 20.0)
                    break
                select.select([chan], [], [], min(1.0, deadline - now))
            out.flush()
            stdout, stderr = out.text(), marker.stderr()
            if timed_out or cancelled:
                return CommandResult(argv, -9, stdout, stderr, time.monotonic() - t0, timed_out=timed_out,
                                     cancelled=cancelled)
            status = chan.recv_exit_status()
            if status == -1 and not self.conn.alive():
                raise self.conn.lost("while the command ran", argv, stdout, stderr)
        # A kill from cancel() may end the command before this loop saw the flag: it was still cancelled.
        return CommandResult(argv, decode_exit(status), stdout, stderr, time.monotonic() - t0,
                             cancelled=self.cancelled)

    def _kill_remote(self, pid: int | None, timeout: float) -> bool:
        """Kill the remote command's session (agent and model child) through a second channel, bounded."""
        if pid is None:
            return True
        if not self.conn.alive():
            return False
        try:
            transport = self.conn.get()
            chan = transport.open_session(timeout=min(timeout, self.connect_timeout_s))
            chan.settimeout(timeout)
            chan.exec_command(kill_script(pid))
            ok = bool(chan.recv_exit_status() == 0)
            chan.close()
            return ok
        except (paramiko.SSHException, OSError, EOFError, DeviceError) as e:
            log.warning("device '%s': could not kill remote process %s: %s", self.name, pid, e)
            return False

    # -- files ------------------------------------------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        transport = self.conn.get()
        chan = self.conn.sftp.get_channel() if self.conn.sftp is not None else None
        if chan is None or chan.closed:
            try:
                self.conn.sftp = paramiko.SFTPClient.from_transport(transport)
            except (paramiko.SSHException, OSError, EOFError) as e:
                if not self.conn.alive():
                    raise self.conn.lost("opening SFTP", None) from None
                raise DeviceError(self.name, f"SFTP is not available: {e}") from None
        assert self.conn.sftp is not None
        return self.conn.sftp

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
            # paramiko's EOFError is its transport giving up on the peer: lost, even before keepalives say so.
            if isinstance(e, EOFError) or not self.conn.alive():
                raise self.conn.lost(f"while pushing {local_path} to {remote_path}", None) from None
            try:
                sftp.remove(tmp)
            except (paramiko.SSHException, EOFError, OSError):
                if not self.conn.alive():
                    raise self.conn.lost(f"while pushing {local_path} to {remote_path}", None) from None
            err = DeviceError(self.name, f"push of {local_path} to {remote_path} failed: {e}")
            raise self.failed_push(local_path, remote_path, size, err) from None

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

    def pull(self, remote_path: str, local_path: str) -> None:
        sftp = self._sftp_client()
        tmp = f"{local_path}.part-{os.getpid()}"
        try:
            sftp.get(remote_path, tmp)
            os.replace(tmp, local_path)
        except (paramiko.SSHException, EOFError, OSError) as e:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(e, EOFError) or not self.conn.alive():
                raise self.conn.lost(f"while pulling {remote_path}", None) from None
            raise DeviceError(self.name, f"pull of {remote_path} failed: {e}") from None

    # -- facts ------------------------------------------------------------------------------------------------

    def facts(self) -> DeviceFacts:
        """Reachability, python, work dir and its free storage in one round trip (stale partial pushes removed)."""
        try:
            self.conn.get()
        except DeviceError as e:
            if isinstance(e, HostKeyMismatch):
                raise  # a security error, never "unreachable"
            return DeviceFacts(reachable=False, extra={"error": str(e)})
        script = facts_script('echo "uname=$(uname -sm)"; ')
        res = self.run(["/bin/sh", "-c", script, "sh", self.python, self.workdir], timeout=60)
        kv = parse_facts(res.stdout)
        return DeviceFacts(
            reachable=True, python=kv.get("python") or None, workdir=kv.get("workdir", self.workdir),
            free_storage_bytes=parse_df(res.stdout),
            extra={"uname": kv.get("uname", ""), "address": f"{self.user}@{self.host}:{self.port}",
                   "stale_parts_removed": kv.get("stale_parts", "0")},
        )

    def close(self) -> None:
        self.conn.close()
