"""CPU contention during a measured phase, decided here and nowhere else (standard library only).

A phase is `contended` when its figures may be slower than the model on that device, for reasons outside it:
- the model process got far less CPU than it asked for: cpu_s < CPU_SHARE_MIN x wall x threads, where threads is
  the spec's explicit count, else 1 (a runtime left to its default may use one thread for a small model, so
  only a starved single core's worth is claimed);
- the host reports CPU pressure: /proc/pressure/cpu "some" (a runnable task waited for a CPU) for more than
  PSI_MAX of the phase's wall time, while the model process got less than OWN_SHARE_FULL of what it asked;
- the hypervisor stole CPU: /proc/stat steal above STEAL_MAX of all CPU ticks in the phase.
Contention only ever slows a model down, so the gate keeps a verdict contention cannot have caused (a budget met
although contended) and turns the others inconclusive (harness/gate/engine.py).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

    Json = Dict[str, Any]
else:
    Json = dict


CPU_SHARE_MIN = 0.5
PSI_MAX = 0.5
STEAL_MAX = 0.05
OWN_SHARE_FULL = 0.9  # host pressure only counts when the model process got less than this share of its ask
PREFIX = "contended: "  # how a record's taint says it (Record.tainted)


def host_cpu() -> Json:
    """The host's cumulative CPU pressure (microseconds) and steal / total ticks; None where not reported."""
    out: Json = {"psi_some_us": None, "steal_ticks": None, "total_ticks": None}
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as f:
            for line in f:
                if line.startswith("some "):
                    out["psi_some_us"] = int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        if fields and fields[0] == "cpu" and len(fields) > 8:
            ticks = [int(x) for x in fields[1:]]
            out["steal_ticks"], out["total_ticks"] = ticks[7], sum(ticks[:8])  # guest time is inside user
    except (OSError, ValueError):
        pass
    return out


def _delta(a: Optional[Json], b: Optional[Json], key: str) -> Optional[int]:
    if not a or not b or not isinstance(a.get(key), int) or not isinstance(b.get(key), int):
        return None
    return int(b[key]) - int(a[key])


def judge(wall_s: float, cpu_s: Optional[float], threads: Optional[int], host_start: Optional[Json],
          host_end: Optional[Json]) -> Optional[str]:
    """Why a phase of wall_s seconds was contended, or None; the figures behind it are in the reason."""
    if wall_s <= 0.0:
        return None
    why = []
    want = float(threads or 1)
    if cpu_s is not None and cpu_s < CPU_SHARE_MIN * wall_s * want:
        why.append("the model process got %.2f CPU-s in %.2f s with %d thread%s asked (%.0f%% of it)"
                   % (cpu_s, wall_s, want, "" if want == 1 else "s", 100.0 * cpu_s / (wall_s * want)))
    psi = _delta(host_start, host_end, "psi_some_us")
    share = None if cpu_s is None else cpu_s / (wall_s * want)
    # host pressure counts where the model itself fell short of what it asked (a shared host is always busy)
    if psi is not None and psi / 1e6 > PSI_MAX * wall_s and (share is None or share < OWN_SHARE_FULL):
        why.append("host CPU pressure: tasks waited for a CPU %.0f%% of the time" % (100.0 * psi / 1e6 / wall_s))
    steal, total = _delta(host_start, host_end, "steal_ticks"), _delta(host_start, host_end, "total_ticks")
    if steal is not None and total and steal > STEAL_MAX * total:
        why.append("CPU steal %.0f%% of all ticks" % (100.0 * steal / total))
    return "; ".join(why) or None
