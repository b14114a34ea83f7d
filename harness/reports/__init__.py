"""Printers of one GateReport: JSON (versioned schema), JUnit XML, Markdown and one self-contained HTML file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from harness.gate.model import GateReport
from harness.reports.html import to_html
from harness.reports.json_report import to_json
from harness.reports.junit import to_junit
from harness.reports.markdown import to_markdown

Format = Literal["json", "junit", "md", "html"]
PRINTERS: dict[str, Callable[[GateReport], str]] = {
    "json": to_json, "junit": to_junit, "md": to_markdown, "html": to_html,
}


def render(report: GateReport, fmt: Format) -> str:
    """The report in one of the formats of PRINTERS."""
    return PRINTERS[fmt](report)


__all__ = ["PRINTERS", "Format", "render", "to_html", "to_json", "to_junit", "to_markdown"]
