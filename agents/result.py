"""AgentResult: the one `result` event of `run` (agents/README.md, "Events"); the harness reads it with from_dict."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from agents.protocol import Json

STATUSES = ("ok", "oom", "timeout", "crashed", "error")
_OOM_WORDS = ("bad_alloc", "memoryerror", "failed to allocate", "cannot allocate memory", "out of memory",
              "unable to allocate", "enomem", "memory allocation", "allocation failed", "failed to map segment")


def looks_like_oom(text: str) -> bool:
    """Whether a runtime's message or stderr says an allocation failed."""
    low = text.lower()
    return any(w in low for w in _OOM_WORDS)


@dataclass
class AgentResult:
    """What happened to one run: status and why, what ran, on which bytes, with which workload, and its figures."""

    status: str = "error"
    message: Optional[str] = None
    signal: Optional[int] = None
    format: Optional[str] = None
    runtime: Dict[str, Any] = field(default_factory=dict)  # name, version, threads
    metrics: Dict[str, Json] = field(default_factory=dict)
    samples: Dict[str, List[float]] = field(default_factory=dict)
    phases: List[Json] = field(default_factory=list)
    stopping: Optional[Json] = None
    os_peak_rss_mib: Optional[float] = None
    os_peak_rss_equals: Optional[str] = None
    thermal: Dict[str, Any] = field(default_factory=dict)  # start / end zone temperatures (C)
    input_shapes: Dict[str, List[int]] = field(default_factory=dict)  # what the model was fed
    artifact_sha256: Optional[str] = None  # of the bytes the model process loaded, hashed before loading
    workload: Json = field(default_factory=dict)  # the WorkloadSpec used, defaults filled

    def to_event(self) -> Json:
        out: Json = {"event": "result"}
        out.update({f.name: getattr(self, f.name) for f in fields(self)})
        return out

    @classmethod
    def from_dict(cls, d: Json) -> "AgentResult":
        """From a result event; unknown keys (a newer agent) are ignored, missing ones take their defaults."""
        known = {f.name for f in fields(cls)}
        r = cls(**{k: v for k, v in d.items() if k in known})
        if r.status not in STATUSES:
            r.message = "agent reported unknown status %r: %s" % (r.status, r.message)
            r.status = "error"
        return r
