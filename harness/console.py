"""Terminal output: the control-character-safe stream wrapper and the summary table (progress: harness/progress.py)."""

from __future__ import annotations

from typing import Any, TextIO

from harness.records import Record
from harness.text import terminal


class SafeStream:
    """Wraps stdout / stderr so nothing the CLI prints carries a raw control character (ESC, CR, C1).

    Installed by harness/cli.py around every command: the one place terminal output is made safe, whatever
    printed it (file names, device output, model metadata inside messages and tables).
    """

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(terminal(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno ... of the real stream
        return getattr(self.inner, name)


def summary_table(records: list[Record]) -> str:
    """The key figures of each device x artifact (harness/reports/keyfigures.py: one definition, every printer)."""
    from harness.reports.keyfigures import render_records

    return render_records(records, "table").rstrip("\n")
