"""The result record: one device x one artifact run, with provenance. Streamed as JSONL.

One model feeds every printer (JSON, JUnit, Markdown, HTML). The JSON Schema published in
harness/schemas/result.schema.json describes exactly `Record.to_dict()`; a test keeps them in step.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from harness.errors import UserError

SCHEMA = "edgefarm.result/1"
RESULTS_FILE = "results.jsonl"

Status = Literal["ok", "oom", "timeout", "crashed", "error", "device_lost", "skipped"]
STATUSES: tuple[str, ...] = ("ok", "oom", "timeout", "crashed", "error", "device_lost", "skipped")


def now_rfc3339() -> str:
    """Current UTC time in RFC 3339 with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Metric:
    """One figure. `ci` is a (low, high) confidence interval where the figure is statistical."""

    value: float | None
    unit: str
    n: int | None = None
    ci: tuple[float, float] | None = None
    confidence: float | None = None
    note: str | None = None  # e.g. "insufficient samples: n=12 < 72 needed for p95 at 95% confidence"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metric:
        ci = d.get("ci")
        return cls(
            value=d.get("value"),
            unit=d["unit"],
            n=d.get("n"),
            ci=(float(ci[0]), float(ci[1])) if ci else None,
            confidence=d.get("confidence"),
            note=d.get("note"),
        )


@dataclass
class ArtifactInfo:
    path: str
    name: str
    format: str  # onnx | tflite | gguf
    size_bytes: int
    sha256: str


@dataclass
class DeviceInfo:
    name: str  # profile name
    transport: str  # local | ssh | adb
    device_class: str  # phone | board | laptop ...
    ram_mib: int | None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # as probed by the agent on the device


@dataclass
class Record:
    """A finished (or failed) run of one artifact on one device."""

    run_id: str
    device: DeviceInfo
    artifact: ArtifactInfo
    status: Status
    started_at: str
    finished_at: str
    message: str | None = None
    signal: int | None = None
    runtime: dict[str, str] = field(default_factory=dict)  # {"name": ..., "version": ...}
    workload: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)  # [{"name","t_start","t_end"}] monotonic s
    energy: dict[str, Any] | None = None
    thermal: dict[str, Any] | None = None
    tainted: list[str] = field(default_factory=list)  # reasons the figures are suspect (throttling, charging)
    provenance: dict[str, Any] = field(default_factory=dict)  # harness version, agent sha256, host, cap ...
    schema: str = SCHEMA

    @property
    def key(self) -> tuple[str, str]:
        """(device, artifact name): what a gate rule or a report cell is about."""
        return (self.device.name, self.artifact.name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for m in d["metrics"].values():
            if m["ci"] is not None:
                m["ci"] = list(m["ci"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        if d.get("schema") != SCHEMA:
            raise UserError(f"result has schema {d.get('schema')!r}; this edgefarm reads {SCHEMA!r}")
        return cls(
            run_id=d["run_id"],
            device=DeviceInfo(**d["device"]),
            artifact=ArtifactInfo(**d["artifact"]),
            status=d["status"],
            started_at=d["started_at"],
            finished_at=d["finished_at"],
            message=d.get("message"),
            signal=d.get("signal"),
            runtime=dict(d.get("runtime") or {}),
            workload=dict(d.get("workload") or {}),
            metrics={k: Metric.from_dict(v) for k, v in (d.get("metrics") or {}).items()},
            samples={k: [float(x) for x in v] for k, v in (d.get("samples") or {}).items()},
            phases=list(d.get("phases") or []),
            energy=d.get("energy"),
            thermal=d.get("thermal"),
            tainted=list(d.get("tainted") or []),
            provenance=dict(d.get("provenance") or {}),
        )

    def value(self, metric: str) -> float | None:
        m = self.metrics.get(metric)
        return None if m is None else m.value


class JsonlWriter:
    """Appends one record per line and fsyncs it, so an interrupted run keeps everything finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: Record) -> None:
        line = json.dumps(record.to_dict(), sort_keys=True, allow_nan=False) + "\n"
        # Several processes (xdist workers, farm hosts on a shared disk) may append to one file.
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        try:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        finally:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_records(path: Path) -> Iterator[Record]:
    """Read a results.jsonl; a torn last line (a run killed mid-write) is skipped, anything else is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines):
                continue
            raise UserError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        try:
            yield Record.from_dict(obj)
        except (KeyError, TypeError) as e:
            raise UserError(f"{path}:{i}: not an edgefarm result record ({e})") from None


def load_run(run_dir: Path) -> list[Record]:
    """All records of a run directory (or of a results.jsonl path)."""
    path = run_dir / RESULTS_FILE if run_dir.is_dir() else run_dir
    if not path.exists():
        raise UserError(f"{run_dir}: no {RESULTS_FILE} here; is this an edgefarm run directory?")
    return list(iter_records(path))
