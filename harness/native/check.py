"""`edgefarm devices` / preflight for a device on the native flavour: the agent runs, and which tools are there.

Returns (name, ok, detail, fix) tuples; harness/devicecheck.py turns them into its Check rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.errors import DeviceError
from harness.native.config import NativeConfig
from harness.native.session import NativeAgent
from harness.native.tools import TOOLS, configured_path
from harness.transports.base import Transport

Row = tuple[str, bool, str, str | None]


def tool_hint(fmt: str) -> str:
    """How to get the native tool for a format (the profile key to set and how to build it)."""
    tool = TOOLS.get(fmt)
    if tool is None:
        return f"no native tool for {fmt} artifacts exists yet; use the Python agent (agent = \"python\")"
    exp = " (experimental adapter)" if tool.experimental else ""
    return f"set [native] {tool.key}{exp} in the profile; to get {tool.binary}: {tool.build}"


def native_rows(name: str, transport: Transport, cfg: NativeConfig, workdir: str,
                formats: Iterable[str]) -> tuple[list[Row], dict[str, Any] | None]:
    """Stage and probe the native agent; one row for the agent, one for the tools, one per needed format."""
    try:
        agent = NativeAgent(name, transport, cfg, workdir)
    except DeviceError as e:
        return [("native agent", False, f"cannot run agents/native/agent.sh with '{cfg.shell}': {e}",
                 "check [native] shell and the tool paths in the profile")], None
    probe = agent.probe
    rows: list[Row] = [("native agent", True, f"native agent ({probe.get('shell') or cfg.shell}), no Python needed", None)]
    present = probe.get("tools") or {}
    parts, bad = [], []
    for tool in TOOLS.values():
        path = configured_path(cfg, tool)
        exp = " [experimental]" if tool.experimental else ""
        if path is None:
            parts.append(f"{tool.binary}{exp} not configured")
        elif present.get(agent.tools.get(tool.format, "")):
            parts.append(f"{tool.binary}{exp} ok")
        else:
            bad.append(tool)
            parts.append(f"{tool.binary}{exp} NOT EXECUTABLE at {agent.tools.get(tool.format)}")
    have = [t for t in TOOLS.values() if present.get(agent.tools.get(t.format, ""))]
    rows.append(("native tools", bool(have) and not bad, "tools: " + "; ".join(parts),
                 None if have and not bad else tool_hint(bad[0].format if bad else "gguf")))
    for fmt in sorted(set(formats)):
        if fmt not in {t.format for t in have}:
            rows.append((f"runtime for {fmt}", False, f"no native tool for the {fmt} artifacts", tool_hint(fmt)))
    return rows, probe
