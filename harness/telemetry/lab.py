"""The released student's lab figures, as field units: from a run directory (results.jsonl) today;
from the history store once it is configured (harness/history, when it lands)."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError
from harness.records import load_run
from harness.telemetry.detect import LabFigure

# field metric -> (lab metric, factor from the lab's unit to the field's)
_LAB = {"peak_memory": ("peak_rss_mib", float(2**20)), "tokens_per_s": ("decode_tokens_per_s", 1.0)}


def lab_metric(field_metric: str) -> tuple[str, float] | None:
    if field_metric.startswith("latency_p"):
        return ("latency_ms_" + field_metric.removeprefix("latency_"), 1e-3)
    if field_metric.startswith("peak_memory_p"):
        return _LAB["peak_memory"]
    return _LAB.get(field_metric)


def lab_figures(run: Path, sha256: str | None, devices: dict[str, str],
                field_metrics: list[str]) -> dict[tuple[str, str], LabFigure]:
    """(device class, field metric) -> the lab figure of that model on the mapped lab device."""
    records = [r for r in load_run(run) if r.status == "ok" and (sha256 is None or r.artifact.sha256 == sha256)]
    if not records:
        raise UserError(f"{run}: no ok record of model {sha256 or '?'} to compare the field with "
                        "(lab.run must hold the released student's run)")
    out: dict[tuple[str, str], LabFigure] = {}
    for dc, device in devices.items():
        recs = [r for r in records if r.device.name == device]
        if not recs:
            raise UserError(f"{run}: no record of the model on lab device {device!r} (lab.devices.{dc})")
        rec = recs[-1]
        for fm in field_metrics:
            lm = lab_metric(fm)
            if lm is None:
                continue
            m = rec.metrics.get(lm[0])
            if m is None or m.value is None:
                continue
            lo, hi = m.ci if m.ci else (m.value, m.value)
            out[(dc, fm)] = LabFigure(m.value * lm[1], lo * lm[1], hi * lm[1],
                                      f"{lm[0]} of {rec.artifact.name} on {device}, run {rec.run_id}")
    return out
