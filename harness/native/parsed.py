"""What a tool's output parser gives: figures, sample series and notes, before any statistic is taken."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ToolOutputError(ValueError):
    """The tool exited but its output holds no usable result (the message says what was missing)."""


@dataclass
class Parsed:
    """Raw figures of one tool run. Statistics are taken later, by result.py through agents/stats.py."""

    runtime: dict[str, Any]  # name, version, threads (as used), backend (as ran), backend_requested
    raw: dict[str, float | None] = field(default_factory=dict)  # single figures by metric name
    samples: dict[str, list[float]] = field(default_factory=dict)  # series in run order
    reported: dict[str, float] = field(default_factory=dict)  # statistics the tool computed itself (no samples)
    notes: dict[str, str] = field(default_factory=dict)  # metric name -> how it was derived, or why it is null
    stopping: dict[str, Any] = field(default_factory=dict)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
