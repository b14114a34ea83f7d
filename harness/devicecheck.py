"""Before a run: is the device reachable, does it have Python and the runtimes the artifacts need, room
for the artifacts on its storage and in its RAM? Every failed check says what is missing and how to fix it.

`edgefarm devices` shows one line per profile from `check_device` (a changed SSH host key is its own state,
never "unreachable"); a run asks `blockers` which artifacts a device's runtimes cannot run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness import deploy
from harness.errors import DeviceError, HostKeyMismatch
from harness.native.check import native_rows, tool_hint
from harness.native.session import wants_native
from harness.profiles import Profile
from harness.records import ArtifactInfo
from harness.transports import Transport, open_transport
from harness.transports.base import DeviceFacts

# artifact format -> (probe key(s) that satisfy it, pip package to install)
RUNTIME_FOR_FORMAT: dict[str, tuple[tuple[str, ...], str]] = {
    "onnx": (("onnxruntime",), "onnxruntime"),
    "tflite": (("ai_edge_litert", "tflite_runtime"), "ai-edge-litert"),
    "gguf": (("llama_cpp",), 'llama-cpp-python (CMAKE_ARGS="-DGGML_NATIVE=OFF" for a portable build)'),
}
RAM_FACTOR = 1.2  # a model needs at least its weights plus working memory


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass
class DeviceCheck:
    """The outcome for one device: every check, what the transport and the agent reported."""

    device: str
    checks: list[Check] = field(default_factory=list)
    facts: DeviceFacts | None = None
    probe: dict[str, Any] | None = None
    host_key_mismatch: HostKeyMismatch | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def reachable(self) -> bool:
        return self.facts is not None and self.facts.reachable

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def summary(self) -> str:
        """One line: the first problem and its fix, or what the device has."""
        if self.failed:
            c = self.failed[0]
            more = f" (+{len(self.failed) - 1} more)" if len(self.failed) > 1 else ""
            return f"{c.name}: {c.detail}" + (f"; fix: {c.fix}" if c.fix else "") + more
        return "; ".join(c.detail for c in self.checks if c.name in ("python", "runtimes", "native agent", "native tools",
                                                                        "storage", "ram"))

    @property
    def state(self) -> str:
        """The word `edgefarm devices` shows."""
        if self.host_key_mismatch is not None:
            return "HOST KEY MISMATCH"
        return "reachable" if self.ok else ("NOT READY" if self.reachable else "UNREACHABLE")


def install_hint(profile: Profile, what: str) -> str:
    """How to get `what` (python, or a pip package) onto this kind of device."""
    if profile.os == "android":
        if what == "python":
            return ("install Termux (F-Droid), run `pkg install python`, and point transport.python at "
                    "/data/data/com.termux/files/usr/bin/python3")
        return f"in Termux: `pkg install python` then `pip install {what}`"
    if what == "python":
        return "install Python 3.8+ on the device (Debian/Raspberry Pi OS: `sudo apt install python3`)"
    return f"on the device: `python3 -m pip install {what}`"


def _mib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def preflight(
    profile: Profile,
    transport: Transport,
    artifacts: Sequence[ArtifactInfo] = (),
    *,
    facts: DeviceFacts | None = None,
    probe: dict[str, Any] | None = None,
) -> DeviceCheck:
    """Run every check on an open transport. Pass facts / probe when the caller has them already."""
    out = DeviceCheck(profile.name)
    facts = facts or transport.facts()
    out.facts = facts
    if not facts.reachable:
        out.checks.append(Check("reachable", False, facts.extra.get("error", "unreachable"),
                                "check the device is on, networked / attached, and the profile's address"))
        return out
    out.checks.append(Check("reachable", True, "reachable"))
    if wants_native(profile.agent, facts):  # no Python needed: agents/native/agent.sh and the profile's tools
        rows, out.probe = native_rows(profile.name, transport, profile.native,
                                      profile.transport.workdir or facts.workdir or "/tmp/edgefarm",
                                      [a.format for a in artifacts])
        out.checks += [Check(*row) for row in rows]
        return out
    want = profile.transport.python
    if not facts.python:
        out.checks.append(Check("python", False, f"no '{want}' on the device", install_hint(profile, "python")))
        return out
    if probe is None:
        try:
            probe = _probe(transport, facts)
        except DeviceError as e:
            out.checks.append(Check("python", False, f"{facts.python} cannot run the agent: {e}",
                                    install_hint(profile, "python")))
            return out
    out.probe = probe
    out.checks.append(Check("python", True, f"python {probe.get('python', '?')} at {facts.python}"))
    runtimes = {k for k, v in (probe.get("runtimes") or {}).items() if v}
    out.checks.append(Check("runtimes", True, "runtimes: " + (", ".join(sorted(runtimes)) or "none")))
    for fmt in sorted({a.format for a in artifacts}):
        keys, package = RUNTIME_FOR_FORMAT.get(fmt, ((), ""))
        if keys and not runtimes.intersection(keys):
            out.checks.append(Check(f"runtime for {fmt}", False, f"no {' or '.join(keys)} for the {fmt} artifacts",
                                    install_hint(profile, package)))
    need = sum(a.size_bytes for a in artifacts)
    free = facts.free_storage_bytes
    if free is None:
        out.checks.append(Check("storage", True, "free storage unknown"))
    elif free < need:
        out.checks.append(Check("storage", False, f"need {need} bytes for the artifacts, {free} free in "
                                                  f"{facts.workdir}", "free space on the device"))
    else:
        out.checks.append(Check("storage", True, f"{_mib(free)} free"))
    fp = probe.get("fingerprint") or {}
    avail = fp.get("ram_available_mib")
    if isinstance(avail, (int, float)):
        biggest = max((a.size_bytes for a in artifacts), default=0)
        if biggest * RAM_FACTOR > avail * 2**20:
            out.checks.append(Check("ram", False, f"{avail:.0f} MiB RAM available, the largest artifact needs "
                                                  f"~{biggest * RAM_FACTOR / 2**20:.0f} MiB",
                                    "close other apps / services, or use a smaller artifact"))
        else:
            out.checks.append(Check("ram", True, f"{_mib(avail * 2**20)} RAM available"))
    return out


def blockers(profile: Profile, probe: dict[str, Any], artifacts: Sequence[ArtifactInfo]) -> dict[str, str]:
    """Before a run, from the agent's probe: artifact name -> why it cannot run here (its runtime is missing).

    Storage is deploy's check (only what must be sent counts); RAM is not a blocker, since an `oom`
    outcome is itself a result worth recording.
    """
    runtimes = {k for k, v in (probe.get("runtimes") or {}).items() if v}
    out: dict[str, str] = {}
    for a in artifacts:
        keys, package = RUNTIME_FOR_FORMAT.get(a.format, ((), ""))
        if keys and not runtimes.intersection(keys):
            hint = tool_hint(a.format) if probe.get("flavour") == "native" else install_hint(profile, package)
            out[a.name] = (f"device '{profile.name}' has no {' or '.join(keys)} for this {a.format} artifact "
                           f"(fix: {hint})")
    return out


def _probe(transport: Transport, facts: DeviceFacts) -> dict[str, Any]:
    python = facts.python or "python3"
    agent = deploy.stage_agent(transport, python, facts.workdir or "/tmp/edgefarm")
    return deploy.probe(transport, python, agent.remote)


def check_device(profile: Profile, artifacts: Sequence[ArtifactInfo] = ()) -> DeviceCheck:
    """Open the device's transport, check it, close it. Never raises for device trouble."""
    try:
        transport = open_transport(profile)
    except DeviceError as e:
        return DeviceCheck(profile.name, [Check("reachable", False, str(e))])
    except Exception as e:  # noqa: BLE001 - a config problem (unset $VAR) is reported, not raised, in a listing
        return DeviceCheck(profile.name, [Check("profile", False, str(e))])
    try:
        return preflight(profile, transport, artifacts)
    except HostKeyMismatch as e:  # a security error: its own state and message, not "check the cable"
        return DeviceCheck(profile.name, [Check("host key", False, e.message, e.hint)], host_key_mismatch=e)
    except DeviceError as e:
        return DeviceCheck(profile.name, [Check("reachable", False, str(e))])
    finally:
        transport.close()
