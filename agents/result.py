"""AgentResult: the one `result` event of `run` (agents/README.md, "Events"); the harness reads it with from_dict."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

from agents.fields import Fields
from agents.protocol import Json

STATUSES = ("ok", "oom", "timeout", "crashed", "error")
_OOM_WORDS = ("bad_alloc", "memoryerror", "failed to allocate", "cannot allocate memory", "out of memory",
              "unable to allocate", "enomem", "memory allocation", "allocation failed", "failed to map segment")


def looks_like_oom(text: str) -> bool:
    """Whether a runtime's message or stderr says an allocation failed."""
    low = text.lower()
    return any(w in low for w in _OOM_WORDS)


class AgentResult(Fields):
    """What happened to one run: status and why, what ran, on which bytes, with which workload, and its figures."""

    status: str = "error"
    message: Optional[str] = None
    signal: Optional[int] = None
    format: Optional[str] = None
    runtime: Dict[str, Any] = {}  # name, version, threads
    metrics: Dict[str, Json] = {}
    samples: Dict[str, List[float]] = {}
    phases: List[Json] = []
    stopping: Optional[Json] = None
    os_peak_rss_mib: Optional[float] = None
    os_peak_rss_equals: Optional[str] = None
    thermal: Dict[str, Any] = {}  # start / end zone temperatures (C)
    input_shapes: Dict[str, List[int]] = {}  # what the model was fed
    artifact_sha256: Optional[str] = None  # of the bytes the model process loaded, hashed before loading
    workload: Json = {}  # the WorkloadSpec used, defaults filled
    alternate: Optional[Json] = None  # spec.alternate: the second model's artifact_sha256, runtime, input_shapes,
    # samples and metrics (no memory figures: both models shared the process)

    def to_event(self) -> Json:
        out: Json = {"event": "result"}
        out.update(self.items())
        return out

    @classmethod
    def from_dict(cls, d: Json) -> "AgentResult":
        """From a result event; unknown keys (a newer agent) are ignored, missing ones take their defaults."""
        known = set(cls.field_names())
        r = cls(**{k: v for k, v in d.items() if k in known})
        if r.status not in STATUSES:
            r.message = "agent reported unknown status %r: %s" % (r.status, r.message)
            r.status = "error"
        return r
