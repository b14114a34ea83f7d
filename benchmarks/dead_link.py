"""How long a silently dead link takes to become DeviceLost, SSH beside adb, with the profile's keepalive setting.

An SSH board (real sshd) and an adb phone (the adbd stand-in behind a real adb server) each get a network
namespace of their own; a command runs on each, the host side of each veth pair is taken down (no RST, no FIN:
a pulled cable), and the seconds from link-down to DeviceLost are printed, with the time a cancel() then takes.

    .venv/bin/python benchmarks/dead_link.py [--keepalive 10] [--rounds 1]

Needs root (ip netns). Not a timed test: it prints. Expected: about 3-4 x keepalive for both transports.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.errors import DeviceLost  # noqa: E402
from harness.standins import adbd, sshd  # noqa: E402
from harness.standins.netns import Netns  # noqa: E402
from harness.transports.adb import AdbTransport  # noqa: E402
from harness.transports.base import Transport  # noqa: E402
from harness.transports.ssh import SSHTransport  # noqa: E402


def detect(t: Transport, netns: Netns) -> tuple[float, float]:
    """(seconds from link-down to DeviceLost, seconds a cancel() then took)."""
    down: list[float] = []

    def on_line(line: str) -> None:
        if line == "go" and not down:
            netns.link(False)
            down.append(time.monotonic())

    try:
        t.run(["sh", "-c", "echo go; sleep 3000"], timeout=3000, on_stdout_line=on_line)
    except DeviceLost:
        lost = time.monotonic() - down[0]
    else:
        raise RuntimeError(f"{t.name}: the command ended without DeviceLost")
    t0 = time.monotonic()
    t.cancel(timeout=15)
    return lost, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keepalive", type=float, default=10.0, help="transport.keepalive_s (profile default 10)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {"ssh": [], "adb": []}
    with tempfile.TemporaryDirectory() as d:
        srv = adbd.AdbServer.start()
        try:
            for r in range(args.rounds):
                board = sshd.start(Path(d) / f"board{r}", netns=True)
                phone = adbd.start(Path(d) / f"phone{r}" / "storage", netns=True)
                assert board.netns is not None and phone.netns is not None
                ssh = SSHTransport("board", host=board.host, port=board.port, user=board.user,
                                   identity_file=str(board.client_key), known_hosts=str(board.known_hosts),
                                   keepalive_s=args.keepalive)
                adb = AdbTransport("phone", serial=phone.serial, adb_port=srv.port, keepalive_s=args.keepalive)
                jobs: list[tuple[str, Callable[[], tuple[float, float]]]] = [
                    ("ssh", lambda: detect(ssh, board.netns)),  # type: ignore[arg-type]
                    ("adb", lambda: detect(adb, phone.netns)),  # type: ignore[arg-type]
                ]
                threads = [threading.Thread(target=lambda k=k, f=f: figures[k].append(f())) for k, f in jobs]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                ssh.close()
                adb.close()
                board.stop()
                phone.stop()
        finally:
            srv.stop()
    print(f"keepalive_s = {args.keepalive:g}; link taken down mid-command; {args.rounds} round(s)")
    for k, rows in figures.items():
        lost = [r[0] for r in rows]
        cancel = [r[1] for r in rows]
        print(f"  {k}: DeviceLost {statistics.median(lost):6.1f} s after link down (runs: "
              f"{', '.join(f'{x:.1f}' for x in lost)}); cancel() then took {max(cancel):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
