"""A network namespace joined to this host by a veth pair, with a TEST-NET address: a stand-in device's own
network, whose link a test can take down (`ip link set <host_if> down`) the way a cable is pulled."""

from __future__ import annotations

import fcntl
import itertools
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass

_counter = itertools.count()
# RFC 5737 documentation nets, never routed: a namespace takes a /30 from the first one the host does not use.
TEST_NETS = ("192.0.2", "198.51.100", "203.0.113")


@dataclass
class Netns:
    """A network namespace joined to the host by a veth pair: host side .1, namespace side .2 of a /30."""

    name: str
    host_if: str
    host_addr: str
    addr: str

    @classmethod
    def create(cls) -> Netns:
        """A fresh namespace; the address is picked and claimed under a host-wide lock (xdist workers race)."""
        with open(os.path.join(tempfile.gettempdir(), "edgefarm-netns.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return cls._create()

    @classmethod
    def _create(cls) -> Netns:
        taken = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        taken += subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
        n = next(_counter)
        tag = f"{os.getpid() % 100000}x{n}"
        for attempt in range(3 * 63):
            net = TEST_NETS[attempt // 63]
            if net + ".0/24" in taken:  # a documentation net already in real use (a container's eth0 may be)
                continue
            idx = (os.getpid() * 7 + n * 13 + attempt) % 63
            host_addr, addr = f"{net}.{idx * 4 + 1}", f"{net}.{idx * 4 + 2}"
            if f" {host_addr}/" not in taken:
                break
        else:
            raise RuntimeError("no free /30 in the TEST-NET ranges for a test namespace")
        ns = cls(name=f"ef{tag}", host_if=f"efh{tag}", host_addr=host_addr, addr=addr)
        peer = f"efd{tag}"
        cmds = [
            ["ip", "netns", "add", ns.name],
            ["ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", peer],
            ["ip", "link", "set", peer, "netns", ns.name],
            ["ip", "addr", "add", f"{host_addr}/30", "dev", ns.host_if],
            ["ip", "link", "set", ns.host_if, "up"],
            ["ip", "-n", ns.name, "addr", "add", f"{addr}/30", "dev", peer],
            ["ip", "-n", ns.name, "link", "set", peer, "up"],
            ["ip", "-n", ns.name, "link", "set", "lo", "up"],
        ]
        try:
            for c in cmds:
                subprocess.run(c, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as e:
            ns.delete()
            raise RuntimeError(f"network namespace set-up failed: {e.cmd}: {e.stderr.strip()}") from None
        return ns

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def delete(self) -> None:
        for p in self.pids():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def link(self, up: bool) -> None:
        """Take the host side of the veth pair down (a pulled cable: no RST, no FIN, just silence) or up."""
        subprocess.run(["ip", "link", "set", self.host_if, "up" if up else "down"], check=True,
                       capture_output=True)

    def exec_argv(self, argv: list[str]) -> list[str]:
        """argv run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]
