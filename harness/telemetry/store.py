"""Where imported field data lives: the results store when one is configured (store_db.py), else a
run-like directory (telemetry.json + samples.jsonl). `open_store` is the one switch. Writes are atomic and
idempotent: a window is keyed by (model, device class, end) and a re-import replaces it, so re-running
`edgefarm telemetry` over an overlapping time range never counts anything twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from harness.errors import UserError
from harness.telemetry import contract as c
from harness.telemetry.window import Window

STORE_SCHEMA = "edgefarm.telemetry-store/1"
WINDOWS_FILE = "telemetry.json"
SAMPLES_FILE = "samples.jsonl"


class TelemetryStore(Protocol):
    def put_windows(self, windows: Iterable[Window], source: str) -> int: ...
    def put_samples(self, samples: Iterable[c.SampleRecord]) -> int: ...
    def windows(self, model: str) -> list[Window]: ...
    def samples(self, model: str) -> list[c.SampleRecord]: ...
    def describe(self) -> str: ...


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({e.strerror})") from None


def _matches(model: str, sha: str, version: str | None) -> bool:
    return model == sha or (version is not None and model == version)


class TelemetryDir:
    """A directory holding imported windows and sampled outputs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def _load(self) -> dict[str, Any]:
        p = self.root / WINDOWS_FILE
        if not p.exists():
            return {"schema": STORE_SCHEMA, "contract": c.SCHEMA, "sources": [], "windows": []}
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{p}: not a telemetry store ({e})") from None
        if not isinstance(d, dict) or d.get("schema") != STORE_SCHEMA:
            raise UserError(f"{p}: schema {d.get('schema') if isinstance(d, dict) else None!r}; "
                            f"this edgefarm reads {STORE_SCHEMA!r}")
        return d

    def put_windows(self, windows: Iterable[Window], source: str) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        d = self._load()
        where = str(self.root / WINDOWS_FILE)
        by_key = {Window.from_dict(w, where).key: w for w in d["windows"]}
        n = 0
        for w in windows:
            by_key[w.key] = w.to_dict()
            n += 1
        d["windows"] = sorted(by_key.values(), key=lambda w: (w["model"], w["device_class"], w["end"]))
        d["sources"] = [*d.get("sources", []), {"source": source, "windows": n}][-50:]
        _atomic_write(self.root / WINDOWS_FILE, json.dumps(d, sort_keys=True))
        return n

    def put_samples(self, samples: Iterable[c.SampleRecord]) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        have = {(s.model_sha256, s.device_class, s.prompt_id, s.time) for s in self._read_samples()}
        new = [s for s in samples if (s.model_sha256, s.device_class, s.prompt_id, s.time) not in have]
        if new:
            with open(self.root / SAMPLES_FILE, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(c.sample_line(s), sort_keys=True) + "\n" for s in new)
                fh.flush()
                os.fsync(fh.fileno())
        return len(new)

    def windows(self, model: str) -> list[Window]:
        where = str(self.root / WINDOWS_FILE)
        return [w for w in (Window.from_dict(x, where) for x in self._load()["windows"])
                if _matches(model, w.model, w.model_version)]

    def _read_samples(self) -> list[c.SampleRecord]:
        p = self.root / SAMPLES_FILE
        if not p.exists():
            return []
        return [r for r in read_jsonl(p) if isinstance(r, c.SampleRecord)]

    def samples(self, model: str) -> list[c.SampleRecord]:
        return [s for s in self._read_samples() if _matches(model, s.model_sha256, s.model_version)]


def read_jsonl(path: Path) -> list[c.RequestRecord | c.SampleRecord]:
    """A contract JSONL file; a torn last line (an app killed mid-write) is skipped, anything else is an error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    out: list[c.RequestRecord | c.SampleRecord] = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines):
                continue
            raise UserError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        out.append(c.parse_record(obj, f"{path}:{i}"))
    return out


def open_store(directory: Path, db: str | None = None) -> TelemetryStore:
    """The store `edgefarm telemetry` writes and `edgefarm drift` reads: the results store when one is
    configured (--db, else $EDGEFARM_DB), else the directory."""
    from harness.history.db import configured_url

    url = configured_url(db)
    if url is None:
        return TelemetryDir(directory)
    from harness.telemetry.store_db import TelemetryDb

    return TelemetryDb(url)
