"""Many devices in parallel (one thread each, under its device lock), artifacts in sequence on each.

Results are streamed to <out>/results.jsonl as each run finishes; run.json is the run's manifest. One failing
device never stops the others; SIGINT/SIGTERM stop every device's agent and model and end the run with
130/143 (harness/orchestrator.py holds the rules).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.interleave import PairPlan
from harness.orchestrator import Orchestrator, stop_on_signals
from harness.profiles import Profile
from harness.records import ArtifactInfo, Record, now_rfc3339
from harness.runner import EventSink, RunOverrides


@dataclass
class FarmResult:
    run_id: str
    out_dir: Path
    records: list[Record] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    exit_code: int = 0
    interrupted: str | None = None
    write_error: str | None = None
    internal_errors: list[str] = field(default_factory=list)
    unusable: dict[str, str] = field(default_factory=dict)


def new_run_id() -> str:
    return now_rfc3339()[:19].replace(":", "").replace("-", "") + "-" + uuid.uuid4().hex[:6]


def run_farm(
    profiles: list[Profile],
    artifacts: list[ArtifactInfo],
    out_dir: Path,
    overrides: RunOverrides,
    *,
    on_event: EventSink | None = None,
    on_record: Callable[[Record], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    run_id: str | None = None,
    resume: bool = False,
    processes: int | None = None,
    pair: PairPlan | None = None,
) -> FarmResult:
    """Run every artifact on every device; return when all devices are done (or stopped by a signal)."""
    orch = Orchestrator(profiles, artifacts, out_dir, overrides, run_id or new_run_id(), resume=resume,
                        on_event=on_event, on_record=on_record, on_message=on_message, processes=processes,
                        pair=pair)
    threads = [threading.Thread(target=orch.run_device, args=(p,), name=f"device-{p.name}") for p in profiles]
    with stop_on_signals(orch):
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # a bounded join keeps the main thread free to run signal handlers
    code = orch.finish()
    return FarmResult(orch.run_id, out_dir, orch.records, orch.bytes_sent, code, orch.interrupted,
                      orch.write_error, orch.internal_errors, orch.unusable)
