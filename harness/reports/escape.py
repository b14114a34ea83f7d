"""Escaping for the report printers: text from a device, a model or a file name, made safe to show.

`term` is the terminal form (control characters, ESC included, shown as \\xNN); Markdown and HTML escape on
top of it, so an ESC or a NUL from a device shows as text in every printer, never as a control character.
"""

from __future__ import annotations

import html
import re

# C0 controls (TAB and LF too: a table cell is one line), DEL, C1 (0x9b alone is a CSI), bidi overrides.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _sub(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x20 else f"\\u{c:04x}"


def term(text: object) -> str:
    """One line of terminal text: every control character shown as an escape, never sent raw."""
    s = text if isinstance(text, str) else str(text)
    return _CONTROL.sub(_sub, s) if _CONTROL.search(s) else s


# One str.translate pass (C speed: the HTML report escapes ~50 strings per cell, 1000 cells) doing both jobs:
# control characters as \\xNN text, and & < > " ' as entities - the same result as html.escape(term(x)).
_HTML_TABLE: dict[int, str] = {c: _sub(re.match(".", chr(c), re.S)) for c in  # type: ignore[arg-type]
                               [*range(0x20), *range(0x7f, 0xa0), *range(0x202a, 0x202f), *range(0x2066, 0x206a)]}
_HTML_TABLE.update({ord(k): html.escape(k, quote=True) for k in "&<>\"'"})


_HTML_NEEDS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069&<>\"']")


def h(x: object) -> str:
    """HTML text or attribute value: control characters escaped as text, then HTML-escaped (quotes too)."""
    s = "" if x is None else x if isinstance(x, str) else str(x)
    return s.translate(_HTML_TABLE) if _HTML_NEEDS.search(s) else s
