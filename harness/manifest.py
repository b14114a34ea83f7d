"""run.json: a run's manifest. What was planned (device x artifact cells), when it ended, how, with what code.

The gate reads it as its checklist: a planned cell without a record is an error cell, never a smaller matrix.
A cell is (device name, artifact sha256); its label is the file name, disambiguated by the parent folder when
two artifacts of different content share a name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.records import RESULTS_FILE, ArtifactInfo, iter_records, now_rfc3339
from harness.version import harness_version

SCHEMA = "edgefarm.run/1"
MANIFEST_FILE = "run.json"

Cell = tuple[str, str]  # (device name, artifact sha256)


def labels(artifacts: Sequence[ArtifactInfo]) -> dict[str, str]:
    """sha256 -> a label a reader can tell apart: the file name, or parent/name (then @sha prefix) on a clash."""
    by_name: dict[str, set[str]] = {}
    for a in artifacts:
        by_name.setdefault(a.name, set()).add(a.sha256)
    out: dict[str, str] = {}
    for a in artifacts:
        if a.sha256 in out:
            continue
        if len(by_name[a.name]) == 1:
            out[a.sha256] = a.name
        else:
            out[a.sha256] = f"{Path(a.path).parent.name}/{a.name}"
    seen: dict[str, int] = {}
    for label in out.values():
        seen[label] = seen.get(label, 0) + 1
    return {sha: (f"{label}@{sha[:8]}" if seen[label] > 1 else label) for sha, label in out.items()}


def unique_artifacts(artifacts: Sequence[ArtifactInfo]) -> list[ArtifactInfo]:
    """One entry per content: the same bytes given twice are one cell."""
    seen: set[str] = set()
    out: list[ArtifactInfo] = []
    for a in artifacts:
        if a.sha256 not in seen:
            seen.add(a.sha256)
            out.append(a)
    return out


@dataclass
class Manifest:
    run_id: str
    devices: list[str]
    artifacts: list[ArtifactInfo]
    started_at: str = field(default_factory=now_rfc3339)
    finished_at: str | None = None
    interrupted: str | None = None  # "SIGINT" | "SIGTERM"
    exit_code: int | None = None
    selected: list[Cell] | None = None  # the cells a test selection (pytest -k / -m) kept; None: all of them

    @property
    def every(self) -> list[Cell]:
        """Every device x artifact cell, selected or not."""
        return [(d, a.sha256) for d in self.devices for a in self.artifacts]

    @property
    def planned(self) -> list[Cell]:
        if self.selected is None:
            return self.every
        keep = set(self.selected)
        return [c for c in self.every if c in keep]

    @property
    def deselected(self) -> list[Cell]:
        """Cells the user's selection left out on purpose: not planned, so never counted as missing."""
        keep = set(self.every if self.selected is None else self.selected)
        return [c for c in self.every if c not in keep]

    def to_dict(self) -> dict[str, Any]:
        lab = labels(self.artifacts)
        return {"schema": SCHEMA, "run_id": self.run_id, "started_at": self.started_at,
                "finished_at": self.finished_at, "harness_version": harness_version(), "devices": self.devices,
                "artifacts": [{"name": a.name, "label": lab[a.sha256], "path": a.path, "sha256": a.sha256,
                               "size_bytes": a.size_bytes, "format": a.format} for a in self.artifacts],
                "planned": [{"device": d, "sha256": s} for d, s in self.planned],
                "deselected": [{"device": d, "sha256": s} for d, s in self.deselected],
                "interrupted": self.interrupted, "exit_code": self.exit_code}

    def write(self, run_dir: Path) -> None:
        """Write atomically (beside, then rename): a reader never sees half a manifest."""
        path = run_dir / MANIFEST_FILE
        tmp = run_dir / f".{MANIFEST_FILE}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise UserError(f"{path}: cannot write the run manifest: {e.strerror}") from None


def read_manifest(run_dir: Path) -> Manifest:
    """Load run.json; a missing or malformed one is a UserError naming it."""
    path = run_dir / MANIFEST_FILE
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ValueError(f"schema is not {SCHEMA}")
        arts = [ArtifactInfo(path=str(a["path"]), name=str(a["name"]), format=str(a["format"]),
                             size_bytes=int(a["size_bytes"]), sha256=str(a["sha256"])) for a in d["artifacts"]]
        return Manifest(run_id=str(d["run_id"]), devices=[str(x) for x in d["devices"]], artifacts=arts,
                        started_at=str(d["started_at"]), finished_at=d.get("finished_at"),
                        interrupted=d.get("interrupted"), exit_code=d.get("exit_code"),
                        selected=[(str(c["device"]), str(c["sha256"])) for c in d["planned"]]
                        if d.get("deselected") else None)
    except OSError as e:
        raise UserError(f"{path}: cannot read the run manifest: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not an edgefarm run manifest ({e})") from None


def has_results(run_dir: Path) -> bool:
    """True when the directory already holds a run (a manifest or any recorded result)."""
    res = run_dir / RESULTS_FILE
    return (run_dir / MANIFEST_FILE).exists() or (res.is_file() and res.stat().st_size > 0)


def recorded(run_dir: Path) -> dict[Cell, str]:
    """Each cell's latest recorded status in a run directory (what --resume keeps when it is ok)."""
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        return {}
    return {(r.device.name, r.artifact.sha256): r.status for r in iter_records(path)}
