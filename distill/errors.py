"""The distill package's user-facing error: the CLI prints it as one line, without a traceback."""

from __future__ import annotations

from harness.errors import UserError


class DistillError(UserError):
    """A problem the user can fix: a missing optional dependency, a bad size, an unloadable export."""
