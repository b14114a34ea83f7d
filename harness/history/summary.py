"""The head of a nightly's step summary: the verdict, then the key figures, then what the trends say.

Markdown; every string from a device or a model is escaped (a device name is not allowed to write the summary).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.history.store import Store
from harness.history.trend import trend
from harness.metrics import METRICS
from harness.records import Record, load_run

KEY_METRICS = ("latency_ms_p95", "decode_tokens_per_s", "ttft_ms", "peak_rss_mib", "load_time_ms")
RECENT = 7  # a change point among the newest RECENT points is news tonight


def md(text: object) -> str:
    """Escape Markdown and HTML so a value prints as itself."""
    out = str(text).replace("\n", " ")
    for ch in "\\`*_{}[]<>()#+-.!|~":
        out = out.replace(ch, "\\" + ch)
    return out


def _gate(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the gate verdict ({e})") from None
    if not isinstance(d, dict) or d.get("schema") != "edgefarm.gate/1":
        raise UserError(f"{path}: not an edgefarm gate verdict (schema edgefarm.gate/1)")
    return d


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def summary_markdown(run_dir: Path, gate_file: Path, store: Store | None) -> str:
    gate = _gate(gate_file)
    records = load_run(run_dir)
    verdict = str(gate.get("verdict", "error")).upper()
    cells = [c for c in gate.get("cells") or [] if isinstance(c, dict)]
    bad = [c for c in cells if c.get("outcome") not in ("pass", "skipped")]
    lines = [f"## edgefarm nightly: {md(verdict)}", ""]
    lines.append(f"{len(cells)} device x artifact cell(s), {len(bad)} not passing; " + md(gate.get("summary", "")))
    lines.append("")
    shown = [m for m in KEY_METRICS if any(r.value(m) is not None for r in records)]
    outcome = {(str(c.get("device")), str(c.get("artifact"))): str(c.get("outcome")) for c in cells}
    lines.append("| device | artifact | outcome | " + " | ".join(
        f"{md(m)} ({md(METRICS[m].unit)})" for m in shown) + " |")
    lines.append("|" + "---|" * (3 + len(shown)))
    for r in sorted(records, key=lambda r: (outcome.get(r.key) == "pass", r.key)):
        status = outcome.get(r.key, r.status if r.status != "ok" else "ungated")
        lines.append(f"| {md(r.device.name)} | {md(r.artifact.name)} | {md(status)} | " +
                     " | ".join(_fmt(r.value(m)) for m in shown) + " |")
    lines.append("")
    if store is not None:
        lines += _trend_lines(store, records, shown)
    return "\n".join(lines) + "\n"


def _trend_lines(store: Store, records: list[Record], metrics: list[str]) -> list[str]:
    news: list[str] = []
    try:
        for r in records:
            for m in metrics:
                if r.value(m) is None:
                    continue
                try:
                    t = trend(store, r.device.name, r.artifact.name, m)
                except UserError as e:
                    if "Otava" in str(e):
                        raise
                    continue
                for c in t.change_points:
                    if c.index >= len(t.points) - RECENT:
                        news.append(f"- {md(c.kind)}: {md(m)} of {md(r.artifact.name)} on {md(r.device.name)} "
                                    f"{_fmt(c.mean_before)} -> {_fmt(c.mean_after)} ({c.change_pct:+.1f}%) "
                                    f"since run {md(c.run_id)}")
    except UserError as e:
        return [f"Trends: not computed ({md(e)})", ""]
    head = f"Trends: change points in the last {RECENT} runs of each series"
    return [head + (":" if news else ": none"), *news, ""]
