"""Text from outside (file names, device output, model metadata) made safe to show.

One place for every printer: the terminal, Markdown and HTML call `printable` on anything that came from a
device, a model or a file name, so ESC sequences and other control characters never reach a reader raw.
"""

from __future__ import annotations

import re

# C0 controls except TAB and LF, DEL, and the C1 range (0x80-0x9f; 0x9b alone is a CSI on many terminals).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_NO_NL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Unicode bidirectional overrides reorder what a reader sees ("Trojan Source"); shown escaped as well.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    # C0 as \xNN (what a reader expects); DEL, C1 and bidi as \u00NN, which is also a valid JSON escape, so a
    # JSON document written with ensure_ascii=False stays valid after passing through here.
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x20 else f"\\u{c:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` with control characters shown as \\xNN / \\u00NN escapes (newlines kept only when asked)."""
    s = text if isinstance(text, str) else str(text)
    s = (_CONTROL if keep_newlines else _CONTROL_NO_NL).sub(_escape, s)
    return _BIDI.sub(_escape, s)


def terminal(text: str) -> str:
    """A block of output for a terminal: lines and tabs kept, every other control character escaped."""
    return printable(text, keep_newlines=True)
