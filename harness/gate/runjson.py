"""The run manifest (run.json), read as the gate's checklist: which (device, artifact) cells were planned.

harness/manifest.py writes it (schema edgefarm.run/1); this module reads it tolerantly for the gate, old or
new. A run directory written before the manifest had `planned` still loads: every device x artifact it lists
is assumed planned, matched by artifact name, and the assumption is said in the report's notes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UserError

RUN_FILE = "run.json"
RUN_SCHEMA = "edgefarm.run/1"


@dataclass(frozen=True)
class PlannedCell:
    """One cell the run meant to measure. `sha256` is None for manifests older than edgefarm.run/1."""

    device: str
    sha256: str | None
    name: str  # the artifact's file name
    label: str  # what reports call it (see records.cell_labels)


@dataclass
class Manifest:
    run_id: str | None
    planned: list[PlannedCell]
    finished: bool  # finished_at was written: the run ended (normally or interrupted), not killed outright
    interrupted: str | None = None
    exit_code: int | None = None
    assumed: list[str] = field(default_factory=list)  # what was assumed about an older or partial manifest


def _bad(path: Path, key: str | None, problem: str) -> UserError:
    where = f"{path}" + (f": key '{key}'" if key else "")
    return UserError(f"{where}: {problem}")


def _str(d: dict[str, Any], key: str, path: Path, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise _bad(path, f"{where}.{key}", f"expected a non-empty string, got {v!r}"[:200])
    return v


def load_manifest(run_dir: Path) -> Manifest | None:
    """The manifest of a run directory; None when there is none (a bare results.jsonl, a merged shard set)."""
    path = run_dir / RUN_FILE
    if not run_dir.is_dir() or not path.is_file():
        return None
    try:
        d = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _bad(path, None, f"not a valid run manifest ({e.__class__.__name__}: {e})"[:300]) from None
    except OSError as e:
        raise _bad(path, None, f"cannot read ({e.strerror or e})") from None
    if not isinstance(d, dict):
        raise _bad(path, None, f"expected a JSON object, got {type(d).__name__}")
    assumed: list[str] = []
    devices = d.get("devices")
    arts = d.get("artifacts")
    if not isinstance(devices, list) or not all(isinstance(x, str) for x in devices):
        raise _bad(path, "devices", "expected a list of device names")
    if not isinstance(arts, list):
        raise _bad(path, "artifacts", "expected a list")
    planned: list[PlannedCell] = []
    if d.get("schema") == RUN_SCHEMA and isinstance(d.get("planned"), list):
        by_sha: dict[str, tuple[str, str]] = {}
        for i, a in enumerate(arts):
            if not isinstance(a, dict):
                raise _bad(path, f"artifacts[{i}]", "expected an object with name, label, sha256")
            sha = _str(a, "sha256", path, f"artifacts[{i}]")
            name = _str(a, "name", path, f"artifacts[{i}]")
            label = a.get("label") if isinstance(a.get("label"), str) and a.get("label") else name
            by_sha[sha] = (name, str(label))
        for i, c in enumerate(d["planned"]):
            if not isinstance(c, dict):
                raise _bad(path, f"planned[{i}]", "expected an object with device and sha256")
            dev, sha = _str(c, "device", path, f"planned[{i}]"), _str(c, "sha256", path, f"planned[{i}]")
            name, label = by_sha.get(sha, (sha[:12], sha[:12]))
            planned.append(PlannedCell(dev, sha, name, label))
    else:
        names = [a if isinstance(a, str) else a.get("name") if isinstance(a, dict) else None for a in arts]
        if not all(isinstance(n, str) for n in names):
            raise _bad(path, "artifacts", "expected artifact names")
        planned = [PlannedCell(dev, None, str(n), str(n)) for dev in devices for n in names]
        assumed.append(f"{path} has no planned cells (an older edgefarm wrote it): every device x artifact it "
                       "lists was assumed planned, matched by artifact file name")
    finished = d.get("finished_at") is not None
    if not finished:
        assumed.append(f"{path} has no finished_at: the run did not end normally (killed, or still running)")
    interrupted = d.get("interrupted") if isinstance(d.get("interrupted"), str) else None
    code = d.get("exit_code") if isinstance(d.get("exit_code"), int) else None
    run_id = d.get("run_id") if isinstance(d.get("run_id"), str) else None
    return Manifest(run_id, planned, finished, interrupted, code, assumed)
