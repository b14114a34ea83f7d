"""The field-telemetry contract, version 1: metric names, labels, buckets and the JSONL record forms.

One place names every field figure; the exporter, the readers (Prometheus, JSONL, OpenTelemetry) and the
drift detector import it. README.md beside this file documents the contract for app developers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from harness.errors import UserError

VERSION = 1
SCHEMA = f"edgefarm.telemetry/{VERSION}"
NAMESPACE = "edgefarm"

# Prometheus names: <namespace>_<name>_<unit>, base units, counters end in _total.
LATENCY = f"{NAMESPACE}_inference_latency_seconds"  # histogram: one observation per successful request
REQUESTS = f"{NAMESPACE}_inference_requests_total"  # counter, label outcome
PEAK_MEMORY = f"{NAMESPACE}_inference_peak_memory_bytes"  # histogram: the process's peak RSS per request
TOKENS = f"{NAMESPACE}_generated_tokens_total"  # counter: tokens generated (text models)
GENERATION_TIME = f"{NAMESPACE}_generation_seconds_total"  # counter: wall time spent generating those tokens
MEMORY_WARNINGS = f"{NAMESPACE}_memory_warnings_total"  # counter: OS low-memory signals (onTrimMemory, PSI)
INFO = f"{NAMESPACE}_telemetry_contract_info"  # gauge 1, label version: which contract an exporter speaks

LABELS = ("model_version", "model_sha256", "device_class")
Outcome = Literal["ok", "oom", "error"]
OUTCOMES: tuple[str, ...] = ("ok", "oom", "error")

# Fixed bucket layouts: every exporter uses the same edges, so windows from many apps add up bucket by bucket
# and a percentile's bucket-resolution error is known in advance (about 19% between neighbouring edges).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.75,
    1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
MEMORY_BUCKETS_BYTES: tuple[float, ...] = tuple(float(2**20 * m) for m in (
    32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1536, 2048, 3072, 4096))

_DEVICE_CLASS = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAX_OUTPUT_CHARS = 8192


def is_sha256(s: str) -> bool:
    return bool(_SHA256.match(s))


def check_labels(model_version: str, model_sha256: str, device_class: str, where: str = "labels") -> None:
    """Labels stay bounded: a release name, a hash and a device class from a short list, never free text."""
    if not _VERSION.match(model_version):
        raise UserError(f"{where}: model_version {model_version!r} is not a release name ([A-Za-z0-9_.+-], <= 64)")
    if not is_sha256(model_sha256):
        raise UserError(f"{where}: model_sha256 {model_sha256!r} is not 64 lowercase hex digits")
    if not _DEVICE_CLASS.match(device_class):
        raise UserError(f"{where}: device_class {device_class!r} is not a class name ([a-z0-9_.-], <= 40)")


def parse_time(value: Any, where: str) -> float:
    """RFC 3339 (with a zone) or Unix seconds -> Unix seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            dt = None
        if dt is not None and dt.tzinfo is not None:
            return dt.timestamp()
    raise UserError(f"{where}: time {value!r} is not RFC 3339 with a zone or Unix seconds")


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RequestRecord:
    """One request as an app logs it (the JSONL form of what the metrics aggregate)."""

    time: float
    model_version: str
    model_sha256: str
    device_class: str
    outcome: str
    latency_s: float | None = None
    peak_memory_bytes: float | None = None
    tokens: int | None = None
    generation_s: float | None = None


@dataclass(frozen=True)
class SampleRecord:
    """One sampled output: what the model answered to a known prompt (behavioural drift)."""

    time: float
    model_version: str
    model_sha256: str
    device_class: str
    prompt_id: str
    output: str


def _num(d: dict[str, Any], key: str, where: str, *, required: bool = False) -> float | None:
    v = d.get(key)
    if v is None:
        if required:
            raise UserError(f"{where}: missing field '{key}'")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise UserError(f"{where}: field '{key}' must be a finite number >= 0, got {v!r}")
    return float(v)


def _str(d: dict[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise UserError(f"{where}: field '{key}' must be a string, got {type(v).__name__}")
    return v


_REQUEST_KEYS = {"schema", "kind", "time", *LABELS, "outcome", "latency_s", "peak_memory_bytes", "tokens",
                 "generation_s"}
_SAMPLE_KEYS = {"schema", "kind", "time", *LABELS, "prompt_id", "output"}


def parse_record(d: Any, where: str) -> RequestRecord | SampleRecord:
    """One JSONL line (already decoded) -> a record; anything off the contract is a UserError naming `where`."""
    if not isinstance(d, dict):
        raise UserError(f"{where}: expected a JSON object")
    if d.get("schema") != SCHEMA:
        raise UserError(f"{where}: schema {d.get('schema')!r}; this edgefarm reads {SCHEMA!r}")
    kind = d.get("kind")
    allowed = _REQUEST_KEYS if kind == "request" else _SAMPLE_KEYS if kind == "sample" else None
    if allowed is None:
        raise UserError(f"{where}: kind {kind!r} is not 'request' or 'sample'")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown field '{unknown[0]}' for kind {kind!r}")
    t = parse_time(d.get("time"), where)
    mv, ms, dc = (_str(d, k, where) for k in LABELS)
    check_labels(mv, ms, dc, where)
    if kind == "sample":
        out = _str(d, "output", where)
        pid = _str(d, "prompt_id", where)
        if len(out) > MAX_OUTPUT_CHARS or not pid or len(pid) > 200:
            raise UserError(f"{where}: prompt_id must be 1-200 characters and output at most {MAX_OUTPUT_CHARS}")
        return SampleRecord(t, mv, ms, dc, pid, out)
    outcome = d.get("outcome")
    if outcome not in OUTCOMES:
        raise UserError(f"{where}: outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    lat = _num(d, "latency_s", where, required=outcome == "ok")
    tok = _num(d, "tokens", where)
    if tok is not None and tok != int(tok):
        raise UserError(f"{where}: field 'tokens' must be an integer")
    return RequestRecord(t, mv, ms, dc, str(outcome), lat, _num(d, "peak_memory_bytes", where),
                         None if tok is None else int(tok), _num(d, "generation_s", where))


def request_line(r: RequestRecord) -> dict[str, Any]:
    d: dict[str, Any] = {"schema": SCHEMA, "kind": "request", "time": rfc3339(r.time),
                         "model_version": r.model_version, "model_sha256": r.model_sha256,
                         "device_class": r.device_class, "outcome": r.outcome}
    for k in ("latency_s", "peak_memory_bytes", "tokens", "generation_s"):
        if getattr(r, k) is not None:
            d[k] = getattr(r, k)
    return d


def sample_line(s: SampleRecord) -> dict[str, Any]:
    return {"schema": SCHEMA, "kind": "sample", "time": rfc3339(s.time), "model_version": s.model_version,
            "model_sha256": s.model_sha256, "device_class": s.device_class, "prompt_id": s.prompt_id,
            "output": s.output}
