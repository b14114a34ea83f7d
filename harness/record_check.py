"""Checks a result record's JSON form before it becomes a Record: every wrong type names its key.

It follows harness/schemas/result.schema.json (tests/test_records.py keeps the two in step) without
needing jsonschema at run time. A hand-edited, truncated or hostile results.jsonl then gives
"results.jsonl:7: key 'metrics.latency_ms_p95.value': expected a number, got string" instead of a traceback.
"""

from __future__ import annotations

from typing import Any

from harness.errors import UserError

STATUSES: tuple[str, ...] = ("ok", "oom", "timeout", "crashed", "error", "device_lost", "skipped")
_FORMATS = ("onnx", "tflite", "gguf")
_TRANSPORTS = ("local", "ssh", "adb")


class RecordError(UserError):
    """A record's JSON form is not a valid record; `key` is the dotted key at fault (None: the whole line)."""

    def __init__(self, key: str | None, problem: str) -> None:
        super().__init__(f"key '{key}': {problem}" if key else problem)
        self.key = key
        self.problem = problem


def json_type(v: object) -> str:
    """The JSON name of a value's type, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _is(v: object, kind: str) -> bool:
    if kind == "null":
        return v is None
    if kind == "string":
        return isinstance(v, str)
    if kind == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "object":
        return isinstance(v, dict)
    if kind == "array":
        return isinstance(v, list)
    raise AssertionError(kind)


def _need(d: dict[str, Any], key: str, where: str, *kinds: str, required: bool = True) -> Any:
    dotted = f"{where}.{key}" if where else key
    if key not in d:
        if required:
            raise RecordError(dotted, "missing")
        return None
    v = d[key]
    if not any(_is(v, k) for k in kinds):
        want = " or ".join("a number" if k == "number" else "an integer" if k == "integer" else
                           "an object" if k == "object" else "an array" if k == "array" else
                           "null" if k == "null" else "a string" for k in kinds)
        raise RecordError(dotted, f"expected {want}, got {json_type(v)} {_short(v)}")
    return v


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _only(d: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
    for k in d:
        if k not in allowed:
            raise RecordError(f"{where}.{k}", f"unknown key (known: {', '.join(allowed)})")


def _enum(d: dict[str, Any], key: str, where: str, values: tuple[str, ...]) -> None:
    v = _need(d, key, where, "string")
    if v not in values:
        raise RecordError(f"{where}.{key}" if where else key, f"{v!r} is not one of {', '.join(values)}")


def check_record(d: dict[str, Any]) -> None:
    """Raise RecordError for the first key whose value a Record cannot hold."""
    for k in ("run_id", "started_at", "finished_at"):
        _need(d, k, "", "string")
    _enum(d, "status", "", STATUSES)
    _need(d, "message", "", "string", "null", required=False)
    _need(d, "signal", "", "integer", "null", required=False)
    dev = _need(d, "device", "", "object")
    _only(dev, "device", ("name", "transport", "device_class", "ram_mib", "fingerprint"))
    _need(dev, "name", "device", "string")
    _need(dev, "transport", "device", "string")
    _need(dev, "device_class", "device", "string")
    ram = _need(dev, "ram_mib", "device", "integer", "null")
    if ram is not None and ram <= 0:  # would make memory headroom > 100 % (negative) or skip it (0)
        raise RecordError("device.ram_mib", f"expected a positive number of MiB or null, got {ram}")
    _need(dev, "fingerprint", "device", "object", required=False)
    art = _need(d, "artifact", "", "object")
    _only(art, "artifact", ("path", "name", "format", "size_bytes", "sha256"))
    for k in ("path", "name", "sha256"):
        _need(art, k, "artifact", "string")
    _enum(art, "format", "artifact", _FORMATS)
    if _need(art, "size_bytes", "artifact", "integer") < 0:
        raise RecordError("artifact.size_bytes", "must not be negative")
    for k in ("runtime", "workload", "provenance"):
        _need(d, k, "", "object", "null", required=False)
    for k in ("energy", "thermal"):
        _need(d, k, "", "object", "null", required=False)
    for k in ("phases", "tainted"):
        _need(d, k, "", "array", "null", required=False)
    for i, t in enumerate(d.get("tainted") or []):
        if not isinstance(t, str):
            raise RecordError(f"tainted[{i}]", f"expected a string, got {json_type(t)}")
    metrics = _need(d, "metrics", "", "object", "null", required=False) or {}
    for name, m in metrics.items():
        where = f"metrics.{name}"
        if not isinstance(m, dict):
            raise RecordError(where, f"expected an object, got {json_type(m)} {_short(m)}")
        _only(m, where, ("value", "unit", "n", "ci", "confidence", "note"))
        _need(m, "value", where, "number", "null")
        _need(m, "unit", where, "string")
        _need(m, "n", where, "integer", "null", required=False)
        _need(m, "confidence", where, "number", "null", required=False)
        _need(m, "note", where, "string", "null", required=False)
        ci = _need(m, "ci", where, "array", "null", required=False)
        if ci is not None and (len(ci) != 2 or not all(_is(x, "number") for x in ci)):
            raise RecordError(f"{where}.ci", f"expected null or two numbers, got {_short(ci)}")
    check_blocks(d)
    samples = _need(d, "samples", "", "object", "null", required=False) or {}
    for name, series in samples.items():
        if not isinstance(series, list):
            raise RecordError(f"samples.{name}", f"expected an array of numbers, got {json_type(series)}")
        for i, x in enumerate(series):
            if not _is(x, "number"):
                raise RecordError(f"samples.{name}[{i}]", f"expected a number, got {json_type(x)} {_short(x)}")


def check_blocks(d: dict[str, Any]) -> None:
    """`blocks` and `pairing` (run-level evidence, interleaved A/B): every wrong type names its key."""
    for i, b in enumerate(_need(d, "blocks", "", "array", "null", required=False) or []):
        where = f"blocks[{i}]"
        if not isinstance(b, dict):
            raise RecordError(where, f"expected an object, got {json_type(b)}")
        _only(b, where, ("index", "role", "n", "stats"))
        for k in ("index", "n"):
            if _need(b, k, where, "integer") < 0:
                raise RecordError(f"{where}.{k}", "must not be negative")
        _enum(b, "role", where, ("launch", "candidate", "baseline"))
        for name, v in (_need(b, "stats", where, "object", required=False) or {}).items():
            if not (_is(v, "number") or v is None):
                raise RecordError(f"{where}.stats.{name}", f"expected a number or null, got {json_type(v)}")
    pair = _need(d, "pairing", "", "object", "null", required=False)
    if pair is not None:
        _only(pair, "pairing", ("session", "role", "partner_sha256", "order", "blocks_each", "unit"))
        _need(pair, "session", "pairing", "string")
        _enum(pair, "role", "pairing", ("candidate", "baseline"))
        _need(pair, "partner_sha256", "pairing", "string")
        _need(pair, "order", "pairing", "string", required=False)
        _need(pair, "blocks_each", "pairing", "integer", required=False)
        if "unit" in pair:
            _enum(pair, "unit", "pairing", ("launches", "requests"))
