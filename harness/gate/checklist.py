"""The run's manifest as the gate's checklist: a planned cell with no usable record, and a results line that
holds no record, become `error` cells that say what is missing and why. Never a silently smaller matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.gate.model import Cell, RuleResult
from harness.gate.runjson import Manifest, PlannedCell
from harness.records import BadLine, Record


def _cell(device: str, label: str, sha: str, status: str, reason: str, kind: str, run_id: str) -> Cell:
    rule = RuleResult("run", "run", "record", "error", reason, error_kind=kind)  # type: ignore[arg-type]
    return Cell(device=device, device_class="", artifact=label, status=status, outcome="error", rules=[rule],
                sha256=sha, message=reason,
                provenance={"run_id": run_id, "artifact_sha256": sha, "device_fingerprint": {},
                            "harness_version": None})


def _planned_key(p: PlannedCell) -> tuple[str, str]:
    return (p.device, p.sha256) if p.sha256 is not None else (p.device, "name:" + p.name)


def _bad_key(b: BadLine, by_name: bool) -> tuple[str, str] | None:
    if b.device is None:
        return None
    if by_name:
        return (b.device, "name:" + b.artifact) if b.artifact else None
    return (b.device, b.sha256) if b.sha256 else None


def missing_cells(manifest: Manifest | None, records: Sequence[Record], bad: Sequence[BadLine],
                  notes: list[str], checklist: bool = True) -> list[Cell]:
    """Error cells for planned cells without a record, and for bad lines no planned cell accounts for."""
    out: list[Cell] = []
    by_name = manifest is not None and any(p.sha256 is None for p in manifest.planned)
    have = {(r.device.name, "name:" + r.artifact.name) if by_name else r.cell for r in records}
    bad_for: dict[tuple[str, str], list[BadLine]] = {}
    loose: list[BadLine] = []
    for b in bad:
        k = _bad_key(b, by_name)
        if k is None:
            loose.append(b)
        else:
            bad_for.setdefault(k, []).append(b)
    run_id = (manifest.run_id if manifest else None) or ""
    if manifest is None and checklist:
        notes.append("no run.json beside the results: the gate cannot tell whether planned cells are missing; "
                     "it judged the records present")
    elif manifest is not None:
        notes.extend(manifest.assumed)
        why = ("the run was interrupted (" + manifest.interrupted + ")" if manifest.interrupted
               else "the run did not finish (killed?)" if not manifest.finished
               else "its device worker ended without writing it")
        for p in manifest.planned:
            k = _planned_key(p)
            if k in have:
                continue
            lines = bad_for.pop(k, [])
            reason = (f"planned in run.json but its record is unreadable: {'; '.join(str(b) for b in lines)}"
                      if lines else f"planned in run.json but results.jsonl has no record for it: {why}")
            out.append(_cell(p.device, p.label, p.sha256 or "", "missing", reason, "missing", run_id))
    for lines in bad_for.values():
        loose.extend(lines)
    for b in loose:  # about no planned cell we know (or no manifest): still an error, named by file and line
        where = f"{b.path.rsplit('/', 1)[-1]}:{b.line}"
        label = b.artifact or where
        out.append(_cell(b.device or "?", label, b.sha256 or "", "error", f"unreadable record: {b}", "malformed",
                         run_id))
    return out


def missing_baseline_notes(cells: Sequence[Cell], baseline: Sequence[Record] | None, matched: int,
                           baseline_run: str | None, notes: list[str]) -> None:
    """Say loudly when a baseline was given but matches nothing (an empty or unrelated run)."""
    if baseline is None:
        return
    name = baseline_run or "the baseline run"
    if not baseline:
        notes.append(f"BASELINE IS EMPTY: {name} holds no records; no relative rule could be judged")
    elif matched == 0 and cells:
        notes.append(f"BASELINE MATCHES NOTHING: none of the {len(baseline)} records of {name} is of a device and "
                     "artifact in this run (matched by sha256, then by label); no relative rule could be judged")
