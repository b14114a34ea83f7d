"""A real OpenSSH sshd as a stand-in SSH board, on a loopback port or inside a network namespace.

Product code (as labgrid ships its fake drivers): tests use it, and so can a user who wants to try a
farm run without hardware. It runs Debian's /usr/sbin/sshd with a config of its own (ed25519 host key
from ssh-keygen, one authorized test key, no passwords, no PAM, internal-sftp), in the foreground.

Options that make it a useful test device:
  - netns: the board gets a network namespace of its own with a TEST-NET address (192.0.2.x, or
    198.51.100.x where the host itself already sits on 192.0.2.0/24) on a
    veth pair; traffic goes only to loopback or to namespaces created here.
  - storage_quota_mib: the board's work directory is a tmpfs of that size in a private mount
    namespace, so a full disk is the kernel's real ENOSPC.
  - kill(): every sshd process of the board dies at once (a board that drops off the network).

    python -m harness.standins.sshd --dir /tmp/board1 [--port 2222] [--netns] [--quota-mib 64]
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.standins.netns import Netns
from harness.standins.procs import dies_with_parent, free_port, kill_tree

__all__ = ["SSHD", "Netns", "SshdBoard", "make_keypair", "start"]

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself and insists on an absolute path


def make_keypair(path: Path, comment: str = "edgefarm-test") -> Path:
    """An ed25519 key pair at path / path.pub (kept if present)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                       check=True, stdout=subprocess.DEVNULL)
    return path


@dataclass
class SshdBoard:
    """One running sshd; connect with user / client_key / known_hosts to host:port."""

    dir: Path
    host: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    workdir: Path
    host_key: Path
    netns: Netns | None = None
    proc: subprocess.Popen[bytes] | None = None
    owns_netns: bool = False
    extra_pids: list[int] = field(default_factory=list)

    @property
    def host_key_line(self) -> str:
        """The known_hosts line for this board's host key."""
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {kind} {blob}\n"

    def kill(self) -> None:
        """Every sshd process of this board dies at once, established connections included."""
        if self.proc is not None:
            kill_tree(self.proc.pid)
            self.proc.wait(timeout=10)
        if self.netns is not None and self.owns_netns:
            for p in self.netns.pids():
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop(self) -> None:
        """Kill the board and remove its namespace."""
        self.kill()
        if self.netns is not None and self.owns_netns:
            self.netns.delete()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> SshdBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    directory: Path,
    *,
    port: int | None = None,
    listen: str | None = None,
    netns: Netns | bool = False,
    storage_quota_mib: int | None = None,
    client_key: Path | None = None,
    trust: bool = True,
    timeout_s: float = 15.0,
    extra_config: str = "",
) -> SshdBoard:
    """Start a board. Its files (keys, config, known_hosts, workdir, log) live under directory.

    netns=True makes a namespace of its own; a Netns puts a second sshd into an existing one.
    trust=False leaves the board's key out of known_hosts (to test refusal and trust on first use).
    extra_config: more sshd_config lines (e.g. `SetEnv PATH=...`: a board whose shell finds no Python).
    """
    if not os.path.exists(SSHD):
        raise RuntimeError(f"{SSHD} not found: install openssh-server (ci/setup.sh --test does)")
    d = directory.resolve()
    d.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
    host_key = make_keypair(d / "ssh_host_ed25519_key", "edgefarm-board")
    ckey = client_key or make_keypair(d / "id_ed25519")
    (d / "authorized_keys").write_text(ckey.with_suffix(".pub").read_text())
    workdir = d / "storage"
    workdir.mkdir(exist_ok=True)
    ns: Netns | None = None
    owns = False
    if netns is True:
        ns, owns = Netns.create(), True
    elif isinstance(netns, Netns):
        ns = netns
    host = listen or (ns.addr if ns is not None else "127.0.0.1")
    if port is None:
        port = 22 if ns is not None and listen is None else free_port()
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {host}\nHostKey {host_key}\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "AllowTcpForwarding yes\nSubsystem sftp internal-sftp\nMaxSessions 64\nMaxStartups 64\n"
        "PrintMotd no\nLogLevel ERROR\n" + extra_config
    )
    argv: list[str] = [SSHD, "-D", "-e", "-f", str(config)]
    if storage_quota_mib is not None:
        # A private mount namespace with a tmpfs of that size over the workdir: a real ENOSPC.
        script = 'mount -t tmpfs -o "size=$1m" tmpfs "$2" && shift 2 && exec "$@"'
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                str(storage_quota_mib), str(workdir), *argv]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns.name, *argv]
    argv = dies_with_parent(argv)
    log = open(d / "sshd.log", "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    log.close()
    known = d / "known_hosts"
    board = SshdBoard(dir=d, host=host, port=port, user=getpass.getuser(), client_key=ckey, known_hosts=known,
                      workdir=workdir, host_key=host_key, netns=ns, proc=proc, owns_netns=owns)
    known.write_text(board.host_key_line if trust else "")
    try:
        _wait_banner(board, proc, timeout_s)
    except Exception:
        board.stop()
        raise
    return board


def _listening(pid: int, port: int) -> bool:
    """Whether the process's network namespace has a TCP socket listening on port (seen from any namespace)."""
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_banner(board: SshdBoard, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (board.dir / "sshd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"sshd exited {proc.returncode} on {board.host}:{board.port}: {log}")
        if _listening(proc.pid, board.port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd on {board.host}:{board.port} did not listen within {timeout_s} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.standins.sshd", description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, required=True, help="where keys, config, known_hosts and storage live")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--netns", action="store_true", help="a network namespace of its own (TEST-NET address)")
    ap.add_argument("--quota-mib", type=int, default=None, help="storage size (tmpfs) of the work directory")
    a = ap.parse_args(argv)
    board = start(a.dir, port=a.port, netns=a.netns, storage_quota_mib=a.quota_mib)
    print(f"sshd board at {board.user}@{board.host}:{board.port}\n  identity_file = {board.client_key}\n"
          f"  known_hosts = {board.known_hosts}\n  workdir = {board.workdir}\n(Ctrl-C stops it)", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
