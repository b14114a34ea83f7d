"""Reading contract v1 from a Prometheus server: its HTTP API (/api/v1/query_range), stdlib only.

Each evaluation window is one point of a range query with step = window length: at time t,
`increase(x[W])` is what happened in (t - W, t]. Six queries fetch every window of a month at once.
increase() extrapolates to the window's edges, so counts are not integers; they are rounded where an
interval needs counts. A window whose bucket edges differ from the contract's is an error, not re-binned.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from harness.errors import UserError
from harness.telemetry import contract as c
from harness.telemetry.window import Window, counts_from_cumulative

GROUP = "model_sha256, model_version, device_class"


class TelemetryUnavailable(UserError):
    """A telemetry source could not be read (server down, refused, timed out): exit 3, like a lost device."""

    exit_code = 3


def selector(model: str) -> str:
    """The label matcher for --model: a sha256 or a release name, checked against the contract (no injection)."""
    if c.is_sha256(model):
        return f'model_sha256="{model}"'
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", model):
        return f'model_version="{model}"'
    raise UserError(f"--model {model!r} is neither a sha256 (64 hex digits) nor a release name")


def _get(url: str, path: str, params: dict[str, str], timeout_s: float) -> Any:
    full = url.rstrip("/") + path + "?" + urllib.parse.urlencode(params)
    if not full.startswith(("http://", "https://")):
        raise UserError(f"--prometheus {url!r} is not an http(s) URL")
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked above
            body = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read())
        except (ValueError, OSError):
            raise TelemetryUnavailable(f"Prometheus {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise TelemetryUnavailable(f"Prometheus {url} could not be read: {reason}") from None
    except ValueError:
        raise TelemetryUnavailable(f"Prometheus {url}: the answer is not JSON (is this a Prometheus server?)") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        err = body.get("error") if isinstance(body, dict) else None
        raise UserError(f"Prometheus {url} refused the query {params.get('query')!r}: {err}")
    return body["data"]


def query_range(url: str, promql: str, start: float, end: float, step_s: float,
                timeout_s: float = 30.0) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    """A matrix answer as (labels, [(t, value)]) pairs."""
    data = _get(url, "/api/v1/query_range", {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                              "step": f"{step_s:g}s", "timeout": f"{timeout_s:g}s"}, timeout_s)
    out = []
    for r in data.get("result", []):
        pts = [(float(t), float(v)) for t, v in r["values"]]
        out.append(({str(k): str(v) for k, v in r["metric"].items()}, pts))
    return out


def window_ends(start: float, end: float, window_s: float) -> list[float]:
    """Window ends on multiples of window_s (epoch-aligned, UTC) with start < end_i - window_s + window_s <= end."""
    first = math.ceil((start + window_s) / window_s) * window_s
    n = int((end - first) // window_s) + 1
    return [first + i * window_s for i in range(max(0, n))]


def fetch_windows(url: str, model: str, start: float, end: float, window_s: float,
                  timeout_s: float = 30.0) -> list[Window]:
    """Every complete window of the model in [start, end] from Prometheus, one Window per device class."""
    ends = window_ends(start, end, window_s)
    if not ends:
        return []
    sel = selector(model)
    w = f"{int(window_s)}s"
    t0, t1 = ends[0], ends[-1]
    acc: dict[tuple[str, str, float], Window] = {}
    le_acc: dict[tuple[str, str, str, float], dict[float, float]] = {}

    def win(lab: dict[str, str], t: float) -> Window:
        k = (lab.get("model_sha256", ""), lab.get("device_class", ""), t)
        if k not in acc:
            acc[k] = Window(k[0], k[1], t - window_s, t, model_version=lab.get("model_version"))
        return acc[k]

    for fam in ("latency", "memory"):
        metric = c.LATENCY if fam == "latency" else c.PEAK_MEMORY
        q = f"sum by ({GROUP}, le) (increase({metric}_bucket{{{sel}}}[{w}]))"
        for lab, pts in query_range(url, q, t0, t1, window_s, timeout_s):
            for t, v in pts:
                win(lab, t)
                le_acc.setdefault((fam, lab.get("model_sha256", ""), lab.get("device_class", ""), t), {})[
                    float(lab["le"])] = 0.0 if math.isnan(v) else v
    for (fam, sha, dc, t), cum in le_acc.items():
        wd = acc[(sha, dc, t)]
        bounds = c.LATENCY_BUCKETS_S if fam == "latency" else c.MEMORY_BUCKETS_BYTES
        counts = counts_from_cumulative(bounds, cum, f"Prometheus {url}: {fam} of {sha[:12]} on {dc}")
        if fam == "latency":
            wd.latency_counts = counts
        else:
            wd.memory_counts = counts
    q = f"sum by ({GROUP}, outcome) (increase({c.REQUESTS}{{{sel}}}[{w}]))"
    for lab, pts in query_range(url, q, t0, t1, window_s, timeout_s):
        if lab.get("outcome") in c.OUTCOMES:
            for t, v in pts:
                win(lab, t).requests[lab["outcome"]] = 0.0 if math.isnan(v) else v
    for metric, attr in ((c.TOKENS, "tokens"), (c.GENERATION_TIME, "generation_s"),
                         (c.MEMORY_WARNINGS, "memory_warnings")):
        q = f"sum by ({GROUP}) (increase({metric}{{{sel}}}[{w}]))"
        for lab, pts in query_range(url, q, t0, t1, window_s, timeout_s):
            for t, v in pts:
                setattr(win(lab, t), attr, 0.0 if math.isnan(v) else v)
    return sorted(acc.values(), key=lambda x: (x.model, x.device_class, x.end))
