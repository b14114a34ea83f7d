"""Provenance of one cell as readable rows (device model, OS, CPU, runtimes, artifact, harness, commit).

Every printer that shows provenance (HTML table, Markdown details) takes its rows from here; values are
plain text, escaped by the printer.
"""

from __future__ import annotations

from typing import Any

from harness.gate.model import Cell


def _android(fp: dict[str, Any]) -> dict[str, Any]:
    a = fp.get("android")
    return a if isinstance(a, dict) else {}


def _device_model(fp: dict[str, Any]) -> str | None:
    android = _android(fp)
    model = " ".join(str(android[k]) for k in ("ro.product.manufacturer", "ro.product.model") if android.get(k))
    return model or str(fp.get("model") or fp.get("device_model") or fp.get("hostname") or "") or None


def _os(fp: dict[str, Any]) -> str | None:
    android = _android(fp)
    if android.get("ro.build.version.release"):
        return f"Android {android['ro.build.version.release']} (kernel {fp.get('kernel', '?')})"
    parts = [fp.get("os_release") or fp.get("os"), f"kernel {fp['kernel']}" if fp.get("kernel") else None]
    return " · ".join(str(p) for p in parts if p) or None


def _cpu(fp: dict[str, Any]) -> str | None:
    bits = [fp.get("cpu_model") or fp.get("cpu"), fp.get("machine"),
            f"{fp['cpu_count']} CPUs" if fp.get("cpu_count") else None]
    return " · ".join(str(b) for b in bits if b) or None


def provenance_rows(cell: Cell, gate_version: str = "") -> list[tuple[str, str]]:
    """(label, value) rows; a value that was not recorded says so instead of being left out."""
    p = cell.provenance
    rec = cell.record
    fp: dict[str, Any] = dict(p.get("device_fingerprint") or {})
    rt = p.get("runtime") or {}
    runtimes: dict[str, Any] = fp["runtimes"] if isinstance(fp.get("runtimes"), dict) else {}
    extra = rec.provenance.extra if rec is not None else {}
    commit = extra.get("commit") or extra.get("git_commit") or extra.get("source_commit")
    rows: list[tuple[str, object]] = [
        ("device", f"{cell.device} ({cell.device_class}, {p.get('transport') or '?'})"),
        ("device model", _device_model(fp)),
        ("OS", _os(fp)),
        ("CPU", _cpu(fp)),
        ("RAM", f"{fp['ram_total_mib']} MiB" if fp.get("ram_total_mib") else
         (f"{rec.device.ram_mib} MiB (profile)" if rec is not None and rec.device.ram_mib else None)),
        ("runtime", " ".join(str(v) for v in rt.values()) or None),
        ("installed runtimes", ", ".join(f"{k} {v}" for k, v in sorted(runtimes.items())) or None),
        ("artifact sha256", p.get("artifact_sha256")),
        ("artifact", f"{p.get('artifact_format')} · {p.get('artifact_size_bytes')} bytes"),
        ("harness (run / gate)", f"{p.get('harness_version') or '?'} / {gate_version or '?'}"),
        ("agent", f"{fp.get('agent_version') or '?'} · sha256 {(rec.provenance.agent_sha256 if rec else None) or 'not recorded'}"),
        ("commit", commit),
        ("run", p.get("run_id")),
        ("started → finished", f"{p.get('started_at')} → {p.get('finished_at')}"),
    ]
    return [(k, "not recorded" if v in (None, "") else str(v)) for k, v in rows]
