"""The agent's wire protocol: one JSON object per stdout line (agents/README.md, "Events")."""

from __future__ import annotations

import json
import math
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import IO, Any, Dict, Optional

    Json = Dict[str, Any]
else:
    Json = dict

AGENT_VERSION = "2"


def emit(obj: Json, fh: Optional[IO[str]] = None) -> None:
    """Write one JSON line and flush at once (a controller aligns its clock on these)."""
    out = fh if fh is not None else sys.stdout
    out.write(json.dumps(obj, sort_keys=True, allow_nan=False) + "\n")
    out.flush()


def finite(x: Optional[float], nd: int = 4) -> Optional[float]:
    """x rounded to nd decimals, or None for None/NaN/inf (JSON has no NaN)."""
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return round(float(x), nd)


def parse_event(line: str) -> Optional[Json]:
    """One agent output line as an event object, or None for anything else (a runtime's own chatter)."""
    try:
        ev = json.loads(line)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None


def error_event(message: str) -> Json:
    """The agent itself failed (bad spec, usage, a bug): printed instead of a result."""
    return {"event": "error", "message": message}
