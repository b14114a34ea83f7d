"""Push throughput of our transports vs the standard tools, to the same stand-in device:
SSHTransport.push vs `scp` (to a real sshd on loopback), AdbTransport.push vs `adb push` (through the same
adb server to the adbd stand-in). Goal: each ratio >= 0.8.

    .venv/bin/python benchmarks/push_throughput.py [--mib 200] [--rounds 3]

Each round pushes the same random file once by each path, alternating which goes first; the figure is the
median over rounds (a shared machine is noisy). Our pushes include what a push really costs here: the
directory check, the free-space check, the temporary name and the rename. Not a timed test: it prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.standins import adbd, sshd  # noqa: E402
from harness.transports.adb import AdbTransport  # noqa: E402
from harness.transports.ssh import SSHTransport  # noqa: E402


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(label_ours: str, ours: Callable[[], None], label_ref: str, ref: Callable[[], None], size: int,
            rounds: int) -> float:
    t_ours: list[float] = []
    t_ref: list[float] = []
    for r in range(rounds):
        pair = [(t_ours, ours), (t_ref, ref)]
        for sink, fn in pair if r % 2 == 0 else reversed(pair):
            sink.append(timed(fn))
    mo, mr = statistics.median(t_ours), statistics.median(t_ref)
    mb = size / 1e6
    print(f"  {label_ours:<28} {mb / mo:7.1f} MB/s  (median {mo:.2f} s; all {', '.join(f'{t:.2f}' for t in t_ours)})")
    print(f"  {label_ref:<28} {mb / mr:7.1f} MB/s  (median {mr:.2f} s; all {', '.join(f'{t:.2f}' for t in t_ref)})")
    ratio = mr / mo
    print(f"  ratio ours/reference        {ratio:7.2f}   (goal >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = args.mib << 20
    with tempfile.TemporaryDirectory(prefix="edgefarm-push-") as tmp:
        base = Path(tmp)
        src = base / "artifact.bin"
        with open(src, "wb") as fh:
            for _ in range(args.mib):
                fh.write(os.urandom(1 << 20))
        print(f"file: {args.mib} MiB of random bytes; {args.rounds} rounds each; median shown")

        board = sshd.start(base / "board")
        try:
            t = SSHTransport("board", host=board.host, port=board.port, user=board.user,
                             identity_file=str(board.client_key), known_hosts=str(board.known_hosts))
            dest = str(board.workdir / "ours.bin")
            t.run(["true"], timeout=30)  # connect once: a device keeps its connection
            scp = ["scp", "-q", "-i", str(board.client_key), "-o", f"UserKnownHostsFile={board.known_hosts}",
                   "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-P", str(board.port), str(src),
                   f"{board.user}@{board.host}:{board.workdir}/scp.bin"]
            cipher = t._connected().remote_cipher
            print(f"\nSSH (OpenSSH sshd on loopback; our cipher {cipher}, scp's default)")
            compare("SSHTransport.push (SFTP)", lambda: t.push(str(src), dest),
                    "scp", lambda: subprocess.run(scp, check=True), size, args.rounds)
            t.close()
        finally:
            board.stop()

        server = adbd.AdbServer.start()
        phone = adbd.start(base / "phone" / "storage")
        try:
            a = AdbTransport("phone", serial=phone.serial, adb_port=server.port, workdir=str(phone.root))
            a.run(["true"], timeout=30)
            print(f"\nadb ({os.path.basename(server.adb)} server on port {server.port} -> adbd stand-in)")
            compare("AdbTransport.push (sync)", lambda: a.push(str(src), f"{phone.root}/ours.bin"),
                    "adb push", lambda: server.cmd("-s", phone.serial, "push", str(src), f"{phone.root}/adb.bin",
                                                   timeout=300).check_returncode(), size, args.rounds)
            a.close()
        finally:
            phone.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
