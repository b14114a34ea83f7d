"""Reading this device's /proc and /sys: small text files, this process's memory figures, its cgroup."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Dict, List, Optional

def read_text(path: str) -> Optional[str]:
    """A text file's content, or None where it cannot be read."""
    try:
        with open(path, "r", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def kv_file(path: str, sep: str = ":") -> Dict[str, str]:
    """`key: value` lines of a file (first occurrence wins); empty where unreadable."""
    text = read_text(path) or ""
    out: Dict[str, str] = {}
    for line in text.splitlines():
        k, s, v = line.partition(sep)
        if s and k.strip() not in out:
            out[k.strip()] = v.strip()
    return out


def cpus() -> List[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))



def proc_status() -> Dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in MiB (empty where /proc is absent)."""
    out: Dict[str, float] = {}
    for k, v in kv_file("/proc/self/status").items():
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem") and v.endswith("kB"):
            out[k] = int(v.split()[0]) / 1024.0
    return out


def reset_hwm() -> bool:
    """Reset this process's VmHWM to its current RSS (clear_refs 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cgroup_oom_kills() -> Optional[int]:
    """OOM kills counted by this process's memory cgroup (v1 oom_control or v2 memory.events)."""
    text = read_text("/proc/self/cgroup") or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        ctrls, rel = parts[1].split(","), parts[2].lstrip("/")
        if "memory" in ctrls:
            f = kv_file(os.path.join("/sys/fs/cgroup/memory", rel, "memory.oom_control"), " ")
        elif parts[1] == "":
            f = kv_file(os.path.join("/sys/fs/cgroup", rel, "memory.events"), " ")
        else:
            continue
        if f.get("oom_kill", "").isdigit():
            return int(f["oom_kill"])
    return None


def celsius(raw: Optional[str]) -> Optional[float]:
    """A thermal zone reading in degrees C: millidegrees usually, whole degrees on some vendors' kernels (the one
    rule; the controller's device-state reader imports it)."""
    try:
        v = int((raw or "").strip())
    except ValueError:
        return None
    return v / 1000.0 if abs(v) > 200 else float(v)


def thermal(base: str = "/sys/class/thermal") -> Dict[str, float]:
    """Thermal zone temperatures in degrees C, keyed `zoneN:type`."""
    out: Dict[str, float] = {}
    try:
        zones = sorted(z for z in os.listdir(base) if z.startswith("thermal_zone"))
    except OSError:
        return out
    for z in zones:
        c = celsius(read_text(os.path.join(base, z, "temp")))
        typ = (read_text(os.path.join(base, z, "type")) or "").strip()
        if c is not None:
            out["%s:%s" % (z, typ) if typ else z] = c
    return out
