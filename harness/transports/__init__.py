"""Transports act on devices. `open_transport` picks the implementation a profile names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.transports.base import CommandResult, DeviceFacts, PushStats, Transport

if TYPE_CHECKING:
    from harness.profiles import Profile

__all__ = ["CommandResult", "DeviceFacts", "PushStats", "Transport", "open_transport"]


def open_transport(profile: Profile) -> Transport:
    """A connected transport for the profile's device (imports SSH/adb support only when needed)."""
    profile.require_resolved()
    t = profile.transport
    if t.kind == "local":
        from harness import memcap
        from harness.transports.local import LocalTransport

        cap = memcap.create(profile.memory.cap_mib) if profile.memory.cap_mib else None
        return LocalTransport(profile.name, workdir=t.workdir, python=t.python, memory_cap=cap)
    if t.kind == "ssh":
        from harness.transports.ssh import SSHTransport

        return SSHTransport.from_profile(profile)
    from harness.transports.adb import AdbTransport

    return AdbTransport.from_profile(profile)
