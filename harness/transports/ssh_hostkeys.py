"""SSH host keys: fingerprints, refusing unknown keys (or trusting them once, loudly), and a changed key as
HostKeyMismatch naming the known_hosts line that holds the old one."""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path

import paramiko

from harness.errors import DeviceError, HostKeyMismatch

log = logging.getLogger(__name__)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256:... form of a host key's fingerprint."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def known_name(host: str, port: int) -> str:
    """How known_hosts names a host: `host` on port 22, else `[host]:port`."""
    return host if port == 22 else f"[{host}]:{port}"


def known_hosts_line(path: str, host: str, port: int) -> int | None:
    """The 1-based line of known_hosts that names host:port (plain or hashed), None when none does."""
    name = known_name(host, port)
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) < 3 or line.lstrip().startswith("#"):
            continue
        names = fields[1] if fields[0].startswith("@") else fields[0]
        for entry in names.split(","):
            if entry == name:
                return i
            if entry.startswith("|1|"):
                try:
                    if paramiko.HostKeys.hash_host(name, entry) == entry:
                        return i
                except (ValueError, AssertionError, TypeError):  # a malformed salt: not ours to judge
                    continue
    return None


def mismatch(device: str, e: paramiko.BadHostKeyException, host: str, port: int,
             known_hosts: str) -> HostKeyMismatch:
    return HostKeyMismatch(device, known_name(host, port), offered=fingerprint(e.key),
                           expected=fingerprint(e.expected_key), known_hosts=known_hosts,
                           line=known_hosts_line(known_hosts, host, port))


class RejectUnknown(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """The default: an unknown host key is refused, with the way to trust it in the message."""

    def __init__(self, device: str, known_hosts: str) -> None:
        self.device, self.known_hosts = device, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise DeviceError(
            self.device,
            f"host key of {hostname} ({key.get_name()} {fingerprint(key)}) is not in {self.known_hosts}; refusing",
            hint="check the fingerprint on the device, then add it (ssh-keyscan) or set transport.trust_on_first_use",
        )


class TrustOnFirstUse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
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
