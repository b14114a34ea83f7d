"""Where a record's figures came from: typed, one field per fact, each written in one place.

`Provenance` is the record's `provenance` object. Known keys are typed fields; keys this harness does not know
(written by an older or newer harness, or by hand) are kept verbatim in `extra` and written back unchanged, so
reading and re-writing a record loses nothing. `to_dict` leaves out what was not recorded, as records always have.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class PushInfo:
    """How the artifact reached the device (harness/deploy.py)."""

    bytes_sent: int
    skipped: bool  # already on the device under its sha256: nothing sent
    seconds: float
    remote_path: str


@dataclass
class MemoryCapInfo:
    """The memory cap the model ran under (harness/run_hooks.py MemoryCapHook)."""

    kind: str  # cgroup | rlimit
    limit_mib: float
    group_peak_mib: float | None = None  # the cap group's own peak (cgroup memory.peak)
    model_file_evicted_from_page_cache: bool = False
    weights_locked_mib: float | None = None
    weights_lock_error: str | None = None


def _opt_float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


@dataclass
class Provenance:
    """The record's provenance: versions, hashes, the host's view of the run, and why the runs stopped."""

    harness_version: str = ""
    agent_sha256: str | None = None  # the agent bundle that ran (deploy's content address)
    controller: str | None = None  # host name of the machine that drove the run
    agent_python: str | None = None  # the device's interpreter version ("native" flavour: none)
    artifact_sha256_loaded: str | None = None  # hashed by the model process from the bytes it loaded
    push: PushInfo | None = None
    memory_cap: MemoryCapInfo | None = None
    host_phases: list[dict[str, Any]] = field(default_factory=list)  # controller monotonic phase marks
    input_shapes: dict[str, Any] | None = None  # the shapes the model was fed, dynamic dims resolved
    stopping: dict[str, Any] | None = None  # why the measured runs ended (agents/loops.py)
    run_sizing: dict[str, Any] | None = None  # what the policy asked of the run's counts (harness/run_sizing.py)
    os_peak_rss_mib: float | None = None  # the OS's peak RSS of the model process (wait4 ru_maxrss / VmHWM)
    os_peak_rss_equals: str | None = None  # which metric that figure stands for
    unregistered_metrics: list[str] = field(default_factory=list)  # metric names not in harness/metrics.py
    launches: list[dict[str, Any]] = field(default_factory=list)  # a cell in several launches: each one's status
    extra: dict[str, Any] = field(default_factory=dict)  # keys this harness does not know, kept verbatim

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if (v is None or v == []) and f.name != "harness_version":
                continue
            out[f.name] = vars(v).copy() if isinstance(v, (PushInfo, MemoryCapInfo)) else v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provenance:
        known = {f.name for f in fields(cls)} - {"extra"}
        p = cls(extra={k: v for k, v in d.items() if k not in known})
        p.harness_version = str(d.get("harness_version") or "")
        for k in ("agent_sha256", "controller", "agent_python", "artifact_sha256_loaded", "os_peak_rss_equals"):
            setattr(p, k, _opt_str(d.get(k)))
        p.os_peak_rss_mib = _opt_float(d.get("os_peak_rss_mib"))
        for k in ("input_shapes", "stopping", "run_sizing"):
            v = d.get(k)
            setattr(p, k, dict(v) if isinstance(v, dict) else None)
            if v is not None and not isinstance(v, dict):
                p.extra[k] = v  # a shape this harness cannot read: written back as it came
        hp = d.get("host_phases")
        p.host_phases = [dict(x) for x in hp if isinstance(x, dict)] if isinstance(hp, list) else []
        la = d.get("launches")
        p.launches = [dict(x) for x in la if isinstance(x, dict)] if isinstance(la, list) else []
        um = d.get("unregistered_metrics")
        p.unregistered_metrics = [str(x) for x in um] if isinstance(um, list) else []
        push = d.get("push")
        if isinstance(push, dict) and isinstance(push.get("bytes_sent"), int):
            p.push = PushInfo(bytes_sent=push["bytes_sent"], skipped=bool(push.get("skipped")),
                              seconds=_opt_float(push.get("seconds")) or 0.0,
                              remote_path=str(push.get("remote_path") or ""))
        elif push is not None:
            p.extra["push"] = push  # not ours to judge here: written back as it came
        cap = d.get("memory_cap")
        if isinstance(cap, dict) and _opt_float(cap.get("limit_mib")) is not None:
            p.memory_cap = MemoryCapInfo(
                kind=str(cap.get("kind") or ""), limit_mib=float(cap["limit_mib"]),
                group_peak_mib=_opt_float(cap.get("group_peak_mib")),
                model_file_evicted_from_page_cache=bool(cap.get("model_file_evicted_from_page_cache")),
                weights_locked_mib=_opt_float(cap.get("weights_locked_mib")),
                weights_lock_error=_opt_str(cap.get("weights_lock_error")))
        elif cap is not None:
            p.extra["memory_cap"] = cap
        return p
