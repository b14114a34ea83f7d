"""Reading contract v1 from OpenTelemetry's JSON metrics export (OTLP/JSON, as the collector's file exporter
writes it: one ExportMetricsServiceRequest per line, or one document).

Names: a metric matches a contract name either exactly or after OpenTelemetry's Prometheus translation
(dots to underscores, unit "s" -> _seconds, "By" -> _bytes, monotonic sums -> _total), so
`edgefarm.inference.latency` with unit "s" is `edgefarm_inference_latency_seconds`. Labels come from the
point's attributes over the resource's (model_version / model.version, model_sha256 / model.sha256,
device_class / device.class). Cumulative series become increases between consecutive exports; delta points
are increases already. Each increase is counted in the window holding its end time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.telemetry import contract as c
from harness.telemetry.window import Window

_UNIT_SUFFIX = {"s": "_seconds", "By": "_bytes"}
_ALIASES = {"model.version": "model_version", "model.sha256": "model_sha256", "device.class": "device_class"}
CUMULATIVE = 2
_TEMPORALITY = {"AGGREGATION_TEMPORALITY_DELTA": 1, "AGGREGATION_TEMPORALITY_CUMULATIVE": 2}


def prometheus_name(name: str, unit: str, monotonic_sum: bool) -> str:
    n = name.replace(".", "_").replace("-", "_")
    suffix = _UNIT_SUFFIX.get(unit, "")
    if suffix and not n.endswith(suffix):
        n += suffix
    if monotonic_sum and not n.endswith("_total"):
        n += "_total"
    return n


def _attrs(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in items or []:
        v = a.get("value", {})
        val = next((v[k] for k in ("stringValue", "intValue", "doubleValue", "boolValue") if k in v), None)
        if val is not None:
            out[_ALIASES.get(a["key"], a["key"])] = str(val)
    return out


def _num(x: Any) -> float:
    return float(x)  # int64 fields arrive as JSON strings, doubles as numbers


def _docs(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    docs = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{i}: not OTLP/JSON ({e.msg})") from None
    return docs


Key = tuple[str, str, str, str]  # (metric, sha, device class, outcome)


def read_windows(path: Path, window_s: float) -> list[Window]:
    """OTLP/JSON metrics -> contract windows aligned on multiples of window_s."""
    # (metric, labels) -> [(start, time, value or bucket list)]
    points: dict[Key, list[tuple[float, float, Any, int, str | None]]] = {}
    try:
        for doc in _docs(path):
            for rm in doc.get("resourceMetrics", []):
                res = _attrs(rm.get("resource", {}).get("attributes"))
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        _collect(m, res, points, path)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: not an OTLP/JSON metrics export ({type(e).__name__}: {e})") from None
    if not points:
        raise UserError(f"{path}: no contract v{c.VERSION} metrics found (names such as {c.LATENCY})")
    acc: dict[tuple[str, str, float], Window] = {}
    for (metric, sha, dc, outcome), pts in points.items():
        pts.sort(key=lambda p: p[1])
        prev: tuple[float, Any] | None = None
        for start, t, val, temporality, version in pts:
            if temporality == CUMULATIVE:
                # A cumulative point counts since its start time: the first one (or one after a restart,
                # whose start time moved) is an increase as it stands.
                inc = val if prev is None or prev[0] != start else _minus(val, prev[1])
                prev = (start, val)
            else:
                inc = val
            ws = math.floor((t - 1e-9) / window_s) * window_s
            w = acc.get((sha, dc, ws))
            if w is None:
                w = acc[(sha, dc, ws)] = Window(sha, dc, ws, ws + window_s, model_version=version)
            _add(w, metric, outcome, inc)
    return sorted(acc.values(), key=lambda w: (w.model, w.device_class, w.end))


def _minus(a: Any, b: Any) -> Any:
    if isinstance(a, list):
        return [max(0.0, x - y) for x, y in zip(a, b)]
    return max(0.0, a - b)


def _add(w: Window, metric: str, outcome: str, inc: Any) -> None:
    if metric == c.LATENCY:
        w.latency_counts = [x + y for x, y in zip(w.latency_counts, inc)]
    elif metric == c.PEAK_MEMORY:
        w.memory_counts = [x + y for x, y in zip(w.memory_counts, inc)]
    elif metric == c.REQUESTS:
        w.requests[outcome] = w.requests.get(outcome, 0.0) + inc
    elif metric == c.TOKENS:
        w.tokens += inc
    elif metric == c.GENERATION_TIME:
        w.generation_s += inc
    elif metric == c.MEMORY_WARNINGS:
        w.memory_warnings += inc


def _collect(m: dict[str, Any], res: dict[str, str], points: dict[Key, list[Any]], path: Path) -> None:
    hist, total = m.get("histogram"), m.get("sum")
    body = hist or total
    if body is None:
        return
    name = prometheus_name(m["name"], m.get("unit", ""), bool(total and total.get("isMonotonic")))
    if name not in (c.LATENCY, c.PEAK_MEMORY, c.REQUESTS, c.TOKENS, c.GENERATION_TIME, c.MEMORY_WARNINGS):
        return
    raw = body.get("aggregationTemporality", CUMULATIVE)
    # OTLP/JSON says integers; protobuf's own JSON printer (and some exporters) write the enum's name.
    temporality = _TEMPORALITY[raw] if isinstance(raw, str) and raw in _TEMPORALITY else int(raw)
    for dp in body.get("dataPoints", []):
        lab = {**res, **_attrs(dp.get("attributes"))}
        mv, sha, dc = (lab.get(k, "") for k in c.LABELS)
        c.check_labels(mv, sha, dc, f"{path}: {m['name']}")
        outcome = lab.get("outcome", "")
        if name == c.REQUESTS and outcome not in c.OUTCOMES:
            raise UserError(f"{path}: {m['name']} point without a contract outcome label ({outcome!r})")
        if hist:
            bounds = tuple(float(b) for b in dp.get("explicitBounds", []))
            want = c.LATENCY_BUCKETS_S if name == c.LATENCY else c.MEMORY_BUCKETS_BYTES
            if bounds != want:
                raise UserError(f"{path}: {m['name']} bucket bounds differ from contract v{c.VERSION}'s")
            val: Any = [_num(x) for x in dp["bucketCounts"]]
        else:
            val = _num(dp["asDouble"] if "asDouble" in dp else dp["asInt"])
        t = _num(dp["timeUnixNano"]) / 1e9
        start = _num(dp.get("startTimeUnixNano", 0)) / 1e9
        points.setdefault((name, sha, dc, outcome), []).append((start, t, val, temporality, mv))
