"""The result record: one device x one artifact run, with provenance. Streamed as JSONL.

One model feeds every printer (JSON, JUnit, Markdown, HTML). The JSON Schema published in
harness/schemas/result.schema.json describes exactly `Record.to_dict()`; a test keeps them in step.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from harness.errors import UserError
from harness.metrics import memory_headroom_pct
from harness.provenance import Provenance
from harness.record_check import STATUSES, RecordError, check_record
from harness.record_check import json_type as _json_type

SCHEMA = "edgefarm.result/1"
RESULTS_FILE = "results.jsonl"

Status = Literal["ok", "oom", "timeout", "crashed", "error", "device_lost", "skipped"]


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


BlockRole = Literal["launch", "candidate", "baseline"]
PairRole = Literal["candidate", "baseline"]
InterleaveUnit = Literal["launches", "requests"]  # what alternates in an A/B session (harness/interleave.py)


@dataclass
class Block:
    """One agent launch of a cell measured in several (`--processes N`, or an interleaved A/B session): the
    run-level unit the gate compares. `stats`: the launch's value of each metric the gate may compare
    (harness/launches.py computes them with agents.stats, one definition); `index`: its place in the session."""

    index: int
    role: BlockRole
    n: int  # measured samples of the launch (latency_ms)
    stats: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Pairing:
    """An interleaved A/B session's tie between a candidate's record and its baseline's (`--baseline-artifact`)."""

    session: str
    role: PairRole
    partner_sha256: str
    order: str = "ABBA"
    blocks_each: int = 0
    unit: InterleaveUnit = "launches"  # a block is one artifact's launch, or its share of an alternating launch


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
    provenance: Provenance = field(default_factory=Provenance)  # versions, hashes, push, cap, stopping (typed)
    blocks: list[Block] = field(default_factory=list)  # per-launch summaries (empty: measured in one launch)
    pairing: Pairing | None = None  # set on both records of an interleaved A/B session
    schema: str = SCHEMA

    @property
    def key(self) -> tuple[str, str]:
        """(device, artifact name): how a policy rule names what it is about (see `cell` for identity)."""
        return (self.device.name, self.artifact.name)

    @property
    def cell(self) -> tuple[str, str]:
        """(device, artifact sha256): one cell of a run's matrix; two same-named files are two cells."""
        return (self.device.name, self.artifact.sha256)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["provenance"] = self.provenance.to_dict()
        for m in d["metrics"].values():
            if m["ci"] is not None:
                m["ci"] = list(m["ci"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """A record from its JSON form; anything malformed is a RecordError naming the key."""
        if not isinstance(d, dict):
            raise RecordError(None, f"expected a JSON object, got {_json_type(d)}")
        if d.get("schema") != SCHEMA:
            raise RecordError("schema", f"result has schema {d.get('schema')!r}; this edgefarm reads {SCHEMA!r}")
        check_record(d)
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
            provenance=Provenance.from_dict(dict(d.get("provenance") or {})),
            blocks=[Block(index=b["index"], role=b["role"], n=b["n"], stats=dict(b.get("stats") or {}))
                    for b in d.get("blocks") or []],
            pairing=Pairing(**d["pairing"]) if d.get("pairing") else None,
        )

    def value(self, metric: str) -> float | None:
        m = self.metrics.get(metric)
        return None if m is None else m.value

    def refresh_headroom(self) -> None:
        """memory_headroom_pct from this record's peak_rss_mib and device RAM (harness.metrics' definition)."""
        h = memory_headroom_pct(self.device.ram_mib, self.value("peak_rss_mib"))
        if h is not None:
            self.metrics["memory_headroom_pct"] = Metric(value=round(h, 2), unit="%")


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


@dataclass
class BadLine:
    """A line of a results file that holds no usable record: where, which key, and why."""

    path: str
    line: int
    key: str | None
    problem: str
    device: str | None = None  # what the line still says it was about, when that much is readable
    artifact: str | None = None
    sha256: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: " + (f"key '{self.key}': " if self.key else "") + self.problem


def _about(obj: object) -> tuple[str | None, str | None, str | None]:
    """(device, artifact name, sha256) of a malformed record, where those parts are readable strings."""
    if not isinstance(obj, dict):
        return None, None, None
    dev, art = obj.get("device"), obj.get("artifact")
    name = dev.get("name") if isinstance(dev, dict) else None
    aname = art.get("name") if isinstance(art, dict) else None
    sha = art.get("sha256") if isinstance(art, dict) else None
    return tuple(x if isinstance(x, str) else None for x in (name, aname, sha))  # type: ignore[return-value]


def read_results(path: Path) -> tuple[list[Record], list[BadLine]]:
    """Every record of a results.jsonl, and every line that is not one (torn, not UTF-8, null, wrong types).

    Tolerant by design: the gate turns each bad line into an `error` cell instead of losing it silently.
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a {RESULTS_FILE}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    records: list[Record] = []
    bad: list[BadLine] = []
    raw_lines = data.split(b"\n")
    last = max((i for i, ln in enumerate(raw_lines, 1) if ln.strip()), default=0)
    for i, raw in enumerate(raw_lines, 1):
        if not raw.strip():
            continue
        obj: object = None
        try:
            obj = json.loads(raw.decode("utf-8"))
            records.append(Record.from_dict(obj))  # type: ignore[arg-type]
        except UnicodeDecodeError as e:
            bad.append(BadLine(str(path), i, None, f"not UTF-8 text (byte {e.start}: {e.reason})"))
        except json.JSONDecodeError as e:
            torn = " (torn: the run was killed while writing it?)" if i == last and not raw.endswith(b"}") else ""
            bad.append(BadLine(str(path), i, None, f"not valid JSON ({e.msg} at column {e.colno}){torn}"))
        except RecursionError:
            bad.append(BadLine(str(path), i, None, "JSON nested too deeply to read"))
        except RecordError as e:
            bad.append(BadLine(str(path), i, e.key, e.problem, *_about(obj)))
    return records, bad


def iter_records(path: Path) -> Iterator[Record]:
    """Read a results.jsonl strictly (merge, compare): the first bad line is a UserError naming file, line, key."""
    records, bad = read_results(path)
    if bad:
        more = f" (and {len(bad) - 1} more bad lines)" if len(bad) > 1 else ""
        raise UserError(f"{bad[0]}{more}")
    yield from records


def results_path(run_dir: Path) -> Path:
    """The results.jsonl of a run directory (or the path itself when it names a file)."""
    path = run_dir / RESULTS_FILE if run_dir.is_dir() else run_dir
    if not path.exists():
        raise UserError(f"{run_dir}: no {RESULTS_FILE} here; is this an edgefarm run directory?")
    return path


def load_run(run_dir: Path) -> list[Record]:
    """All records of a run directory (or of a results.jsonl path); a bad line is a UserError."""
    return list(iter_records(results_path(run_dir)))


def cell_labels(artifacts: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """sha256 -> a label a reader can tell apart: the artifact's name, with its parent folders put in front
    while two different files share it (`a/model.onnx`, `b/model.onnx`), the sha256 prefix as a last resort.

    `artifacts` are (sha256, name, path) triples. Reports use these labels for cells (with the device).
    """
    names: dict[str, str] = {}
    parents: dict[str, tuple[str, ...]] = {}
    for sha, name, path in artifacts:
        if sha not in names:
            names[sha] = name
            parents[sha] = PurePosixPath(path.replace("\\", "/")).parent.parts
    labels = dict(names)
    depth = 0
    while True:
        by_label: dict[str, list[str]] = {}
        for sha, lab in labels.items():
            by_label.setdefault(lab, []).append(sha)
        clashes = [shas for shas in by_label.values() if len(shas) > 1]
        if not clashes:
            return labels
        depth += 1
        grew = False
        for shas in clashes:
            for sha in shas:
                up = [x for x in parents[sha] if x not in ("/", "")]
                if depth <= len(up):
                    labels[sha] = "/".join([*up[-depth:], names[sha]])
                    grew = True
        if not grew or depth > 32:
            for shas in clashes:
                for sha in shas:
                    labels[sha] = f"{names[sha]}@{sha[:8]}"
            return labels


def record_labels(records: Iterable[Record]) -> dict[str, str]:
    """sha256 -> label for the artifacts of these records (see cell_labels)."""
    return cell_labels((r.artifact.sha256, r.artifact.name, r.artifact.path) for r in records)
