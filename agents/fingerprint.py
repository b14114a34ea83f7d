"""Device fingerprint: OS, CPU, RAM, Python, runtime versions, CPU frequencies, thermal zones, Android props.

Nothing is imported to find versions (a directory listing of *.dist-info costs no memory).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from typing import Any, Callable, Dict, Optional, Sequence

from agents.dists import dist_versions
from agents.procfs import cpus, kv_file, read_text, thermal
from agents.protocol import AGENT_VERSION, Json

def _cpu_model() -> Optional[str]:
    info = kv_file("/proc/cpuinfo")
    for key in ("model name", "Hardware", "Processor", "cpu model", "uarch"):
        if info.get(key):
            return info[key]
    if info.get("CPU implementer"):
        return "ARM implementer %s part %s" % (info.get("CPU implementer"), info.get("CPU part", "?"))
    return platform.processor() or None


def runtime_versions() -> Dict[str, str]:
    """Installed runtime distributions (nothing is imported)."""
    return dist_versions(("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime",
                          "llama-cpp-python", "numpy"))


def cpufreq(base: str = "/sys/devices/system/cpu") -> Dict[str, Json]:
    """Per-CPU governor and current/max frequency (MHz) where sysfs shows them."""
    out: Dict[str, Json] = {}
    try:
        cpus = sorted((d for d in os.listdir(base) if d.startswith("cpu") and d[3:].isdigit()),
                      key=lambda d: int(d[3:]))
    except OSError:
        return out
    for cpu in cpus:
        d = os.path.join(base, cpu, "cpufreq")
        entry: Json = {}
        gov = read_text(os.path.join(d, "scaling_governor"))
        if gov:
            entry["governor"] = gov.strip()
        for key, fname in (("cur_mhz", "scaling_cur_freq"), ("max_mhz", "cpuinfo_max_freq"),
                           ("scaling_max_mhz", "scaling_max_freq")):
            v = read_text(os.path.join(d, fname))
            if v and v.strip().isdigit():
                entry[key] = int(v.strip()) / 1000.0
        if entry:
            out[cpu] = entry
    return out


_ANDROID_PROPS = ("ro.product.manufacturer", "ro.product.model", "ro.product.device", "ro.board.platform",
                  "ro.soc.manufacturer", "ro.soc.model", "ro.hardware", "ro.build.version.release",
                  "ro.build.version.sdk", "ro.build.fingerprint")


def android_props() -> Dict[str, str]:
    """A few getprop values (one `getprop` call, its `[key]: [value]` lines), where getprop exists."""
    out: Dict[str, str] = {}
    exe = None
    for d in (os.environ.get("PATH", "") + ":/system/bin").split(":"):
        if d and os.access(os.path.join(d, "getprop"), os.X_OK):
            exe = os.path.join(d, "getprop")
            break
    if exe is None:
        return out
    try:
        text = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10,
                              check=False).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return out
    for line in text.splitlines():
        m = re.match(r"\[([^\]]+)\]: \[(.*)\]\s*$", line.strip())
        if m and m.group(1) in _ANDROID_PROPS and m.group(2):
            out[m.group(1)] = m.group(2)
    return out


def fingerprint() -> Json:
    """Device fingerprint; each field is absent where it cannot be read."""
    fp: Json = {}

    def put(key: str, fn: Callable[[], Any]) -> None:
        try:
            v = fn()
        except Exception:
            return
        if v not in (None, "", {}, []):
            fp[key] = v

    put("os", platform.system)
    put("os_release", lambda: kv_file("/etc/os-release", "=").get("PRETTY_NAME", "").strip('"'))
    put("kernel", platform.release)
    put("kernel_version", platform.version)
    put("machine", platform.machine)
    put("hostname", platform.node)
    put("cpu_model", _cpu_model)
    put("cpu_count", os.cpu_count)
    put("cpu_affinity", cpus)
    put("ram_total_mib", lambda: round(int(kv_file("/proc/meminfo")["MemTotal"].split()[0]) / 1024.0, 1))
    put("ram_available_mib",
        lambda: round(int(kv_file("/proc/meminfo")["MemAvailable"].split()[0]) / 1024.0, 1))
    put("python", platform.python_version)
    put("python_implementation", platform.python_implementation)
    put("runtimes", runtime_versions)
    put("cpufreq", cpufreq)
    put("thermal_c", thermal)
    put("android", android_props)
    fp["agent_version"] = AGENT_VERSION
    return fp
