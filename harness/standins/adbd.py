"""A device-side adb daemon over TCP that runs commands on this host: a stand-in Android device.

It speaks the ADB transport the real adbd speaks (CNXN with a `features=shell_v2,cmd` banner; OPEN, OKAY,
WRTE, CLSE with one unacknowledged WRTE per stream and direction), and the services the harness uses:
`shell:` / `exec:` (raw), `shell,v2,...:` (stdout, stderr and exit code in packets), `sync:` v1 (STAT, LIST,
SEND, RECV, QUIT) and `tcp:PORT` (so `adb forward` works). The real adb server connects to it
(`adb connect 127.0.0.1:PORT`) and everything above that (adbutils, `adb shell`, `adb push`) is unchanged.

--root DIR is the device's storage: the only place sync may write, the working directory of shell
commands, and with --quota-mib N a storage of that size (a tmpfs in a private mount namespace when
running as root, so the kernel says ENOSPC to pushes and shell writes alike; else counted by the daemon).
A `getprop` shim answers the banner's properties, as a phone would.

    python -m harness.standins.adbd --port 6001 --root /tmp/phone [--quota-mib 64]
    adb connect 127.0.0.1:6001 && adb -s 127.0.0.1:6001 shell echo hello
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.standins.adb_wire import Connection, Stream, StreamClosed
from harness.standins.adbd_sync import SyncService
from harness.standins.netns import Netns
from harness.standins.procs import dies_with_parent, free_port, kill_tree

# shell protocol v2 packet ids
SH_STDIN, SH_STDOUT, SH_STDERR, SH_EXIT, SH_CLOSE_STDIN, SH_WINDOW = 0, 1, 2, 3, 4, 5


@dataclass
class Daemon:
    """What the device is: its storage root, its properties, its quota."""

    root: Path
    quota_bytes: int | None = None  # counted by the daemon (when no tmpfs does it)
    props: dict[str, str] = field(default_factory=lambda: {
        "ro.product.name": "edgefarm_standin", "ro.product.model": "EdgefarmStandin",
        "ro.product.device": "standin", "ro.build.version.release": "14", "ro.build.version.sdk": "34",
        "ro.product.cpu.abi": os.uname().machine,
    })

    def banner(self) -> str:
        names = ("ro.product.name", "ro.product.model", "ro.product.device")
        return "device::" + "".join(f"{k}={self.props[k]};" for k in names) + "features=shell_v2,cmd"

    def prepare(self) -> None:
        """A `getprop` on PATH for shell commands, answering from props."""
        shim = self.root / ".adbd-bin"
        shim.mkdir(parents=True, exist_ok=True)
        cases = "".join(f"  {shlex.quote(k)}) echo {shlex.quote(v)};;\n" for k, v in self.props.items())
        lines = "".join(f"[{k}]: [{v}]\\n" for k, v in self.props.items())
        script = f'#!/bin/sh\n[ $# -eq 0 ] && {{ printf "{lines}"; exit 0; }}\ncase "$1" in\n{cases}  *) echo;;\nesac\n'
        (shim / "getprop").write_text(script)
        (shim / "getprop").chmod(0o755)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.root / '.adbd-bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env.pop("ANDROID_ADB_SERVER_PORT", None)
        return env

    def service(self, name: str, stream: Stream) -> Callable[[], None] | None:
        """The handler for an OPEN, or None to refuse it (CLSE)."""
        if name.startswith("shell,v2") or name.startswith("shell,"):
            _, _, cmd = name.partition(":")
            opts = name.partition(":")[0].split(",")
            v2 = "v2" in opts
            return lambda: self._shell(stream, cmd, v2=v2, merge_stderr=not v2)
        if name.startswith("shell:"):
            return lambda: self._shell(stream, name[6:], v2=False, merge_stderr=True)
        if name.startswith("exec:"):
            return lambda: self._shell(stream, name[5:], v2=False, merge_stderr=False)
        if name == "sync:":
            return lambda: SyncService(self, stream).serve()
        if name.startswith("tcp:"):
            return self._tcp(stream, name[4:])
        return None

    # shell -------------------------------------------------------------------------------------------------
    def _shell(self, stream: Stream, cmd: str, *, v2: bool, merge_stderr: bool) -> None:
        argv = ["/bin/sh", "-c", cmd] if cmd.strip() else ["/bin/sh"]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else (subprocess.PIPE if v2 else subprocess.DEVNULL),
            cwd=self.root, env=self.env(), start_new_session=True,  # like adbd: each command leads a session
        )

        def hang_up() -> None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGHUP)
                except ProcessLookupError:
                    pass

        stream.on_remote_close = hang_up

        def pump(fd: int, ident: int) -> None:
            try:
                while chunk := os.read(fd, 1 << 16):
                    stream.write(_packet(ident, chunk) if v2 else chunk)
            except (StreamClosed, OSError):
                pass

        pumps = [threading.Thread(target=pump, args=(proc.stdout.fileno(), SH_STDOUT), daemon=True)]  # type: ignore[union-attr]
        if v2 and proc.stderr is not None:
            pumps.append(threading.Thread(target=pump, args=(proc.stderr.fileno(), SH_STDERR), daemon=True))
        feeder = threading.Thread(target=self._feed_stdin, args=(stream, proc, v2), daemon=True)
        for t in (*pumps, feeder):
            t.start()
        code = proc.wait()
        for t in pumps:
            t.join()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        if v2 and not stream.closed:
            stream.write(_packet(SH_EXIT, bytes([code & 0xFF if code >= 0 else 128 - code])))

    @staticmethod
    def _feed_stdin(stream: Stream, proc: subprocess.Popen[bytes], v2: bool) -> None:
        assert proc.stdin is not None
        stdin = proc.stdin
        try:
            if not v2:
                while data := stream.read_some():
                    stdin.write(data)
                    stdin.flush()
                return
            while True:
                head = stream.read_exact(5)
                ident, length = head[0], struct.unpack("<I", head[1:])[0]
                body = stream.read_exact(length) if length else b""
                if ident == SH_STDIN:
                    stdin.write(body)
                    stdin.flush()
                elif ident == SH_CLOSE_STDIN:
                    return
        except (StreamClosed, OSError):
            pass
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    # tcp forwarding ----------------------------------------------------------------------------------------
    def _tcp(self, stream: Stream, port: str) -> Callable[[], None] | None:
        if not port.isdigit():
            return None
        try:
            sock = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        except OSError:
            return None
        sock.settimeout(None)

        def run() -> None:
            def up() -> None:
                try:
                    while data := stream.read_some():
                        sock.sendall(data)
                except OSError:
                    pass
                finally:
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

            t = threading.Thread(target=up, daemon=True)
            t.start()
            try:
                while data := sock.recv(1 << 16):
                    stream.write(data)
            except OSError:
                pass
            finally:
                sock.close()

        return run

    # storage -----------------------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total

    def writable(self, path: str) -> bool:
        real = os.path.realpath(path)
        root = os.path.realpath(self.root)
        return real == root or real.startswith(root + os.sep)


def _packet(ident: int, data: bytes) -> bytes:
    return bytes([ident]) + struct.pack("<I", len(data)) + data


def serve(daemon: Daemon, host: str, port: int, ready: Callable[[], None] | None = None) -> None:
    """Accept hosts forever (each connection on its own thread)."""
    daemon.prepare()
    srv = socket.create_server((host, port), reuse_port=False)
    if ready:
        ready()
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Connection(sock, daemon).serve, daemon=True, name="adbd-conn").start()


# -- the stand-in as a process, for tests and users ------------------------------------------------------------

@dataclass
class AdbdDevice:
    """A running stand-in; `serial` is what `adb connect` and profiles name it by."""

    host: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes]
    netns: Netns | None = None  # the device's own network (netns=True): its link can be taken down

    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    def kill(self) -> None:
        """The daemon and every command it runs die at once (the connection is reset: a crashed adbd)."""
        kill_tree(self.proc.pid)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        if self.netns is not None:
            self.netns.delete()


def start(root: Path, *, port: int | None = None, host: str = "127.0.0.1", quota_mib: int | None = None,
          netns: bool = False, timeout_s: float = 15.0) -> AdbdDevice:
    """Start a stand-in device in a child process and wait until it listens.

    netns=True gives it a network namespace of its own (TEST-NET address, see netns.py): a Wi-Fi phone whose
    link a test can take down with `device.netns.link(False)`.
    """
    ns = Netns.create() if netns else None
    if ns is not None:
        host = ns.addr
    port = port or (6001 if ns is not None else free_port(host))
    if port in range(5554, 5586):
        raise ValueError(f"port {port} is in adb's emulator range 5554-5585; pick another")
    root.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "harness.standins.adbd", "--host", host, "--port", str(port), "--root", str(root)]
    if quota_mib is not None:
        argv += ["--quota-mib", str(quota_mib)]
    if ns is not None:
        argv = ns.exec_argv(argv)
    log = open(root.parent / f"adbd-{port}.log", "ab")
    proc = subprocess.Popen(dies_with_parent(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])
    log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if ns is not None:
                ns.delete()
            raise RuntimeError(f"adbd stand-in exited {proc.returncode}: "
                               f"{(root.parent / f'adbd-{port}.log').read_text(errors='replace')[-1500:]}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return AdbdDevice(host, port, root, proc, ns)
        except OSError:
            time.sleep(0.05)
    kill_tree(proc.pid)
    if ns is not None:
        ns.delete()
    raise RuntimeError(f"adbd stand-in on {host}:{port} did not listen within {timeout_s} s")


@dataclass
class AdbServer:
    """A private adb server (the real host-side binary) on a port of its own, for tests and benchmarks.

    It runs in the foreground as our child (`adb nodaemon server`), so it dies with the run that started it;
    stop() asks it to go with `adb kill-server`, as a user would.
    """

    port: int
    adb: str
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, port: int | None = None, adb: str | None = None, timeout_s: float = 20.0) -> AdbServer:
        if adb is None:
            import adbutils

            adb = adbutils.adb_path()
        srv = cls(port or free_port(), adb)
        srv.proc = subprocess.Popen(dies_with_parent([adb, "-P", str(srv.port), "nodaemon", "server"]),
                                    env=srv.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if srv.proc.poll() is not None:
                raise RuntimeError(f"adb server on port {srv.port} exited {srv.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=0.5).close()
                return srv
            except OSError:
                time.sleep(0.05)
        srv.stop()
        raise RuntimeError(f"adb server on port {srv.port} did not listen within {timeout_s} s")

    def env(self) -> dict[str, str]:
        # No mDNS discovery and no emulator scan: a test server talks to its own stand-ins only.
        return {**os.environ, "ANDROID_ADB_SERVER_PORT": str(self.port), "ADB_MDNS": "0",
                "ADB_MDNS_OPENSCREEN": "0", "ADB_EMU": "0"}

    def cmd(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.adb, "-P", str(self.port), *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env(), stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        self.cmd("kill-server", timeout=30)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc.pid)
                self.proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.standins.adbd", description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", type=Path, required=True, help="the device's storage directory")
    ap.add_argument("--quota-mib", type=int, default=None, help="size of the device's storage")
    ap.add_argument("--model", default=None, help="ro.product.model to announce")
    args = ap.parse_args(argv)
    if args.port in range(5554, 5586):
        ap.error("ports 5554-5585 belong to adb's emulator scan")
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    quota: int | None = None
    if args.quota_mib is not None:
        if os.environ.get("EDGEFARM_ADBD_TMPFS") != str(root):
            if os.geteuid() == 0 and _which("unshare"):
                # Re-run inside a private mount namespace with a tmpfs of that size over the storage.
                script = 'mount -t tmpfs -o "size=$1m" tmpfs "$2" && shift 2 && exec "$@"'
                os.environ["EDGEFARM_ADBD_TMPFS"] = str(root)
                os.execvp("unshare", ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                                      str(args.quota_mib), str(root), sys.executable, "-m", "harness.standins.adbd",
                                      *(argv if argv is not None else sys.argv[1:])])
            quota = args.quota_mib << 20  # unprivileged: the daemon counts what sync writes
    daemon = Daemon(root=root, quota_bytes=quota)
    if args.model:
        daemon.props["ro.product.model"] = args.model
    serve(daemon, args.host, args.port,
          ready=lambda: print(f"adbd stand-in on {args.host}:{args.port}, storage {root}", flush=True))
    return 0


def _which(name: str) -> bool:
    return any(os.access(os.path.join(p, name), os.X_OK) for p in os.environ.get("PATH", "").split(":"))


if __name__ == "__main__":
    sys.exit(main())
