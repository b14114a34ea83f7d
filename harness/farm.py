"""Many devices in parallel (one thread each, under its device lock), artifacts in sequence on each.

Results are streamed to <out>/results.jsonl as each run finishes. One failing device never stops the others.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.devicecheck import blockers
from harness.errors import DeviceError, DeviceLost
from harness.locks import device_lock
from harness.profiles import Profile
from harness.records import RESULTS_FILE, ArtifactInfo, JsonlWriter, Record, now_rfc3339
from harness.runner import DeviceSession, EventSink, RunOverrides, failed_record
from harness.version import harness_version


@dataclass
class FarmResult:
    run_id: str
    out_dir: Path
    records: list[Record] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)


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
) -> FarmResult:
    """Run every artifact on every device; return when all devices are done."""
    run_id = run_id or new_run_id()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"run_id": run_id, "started_at": now_rfc3339(), "harness_version": harness_version(),
                            "devices": [p.name for p in profiles], "artifacts": [a.name for a in artifacts]}
    (out_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    result = FarmResult(run_id, out_dir)
    write_lock = threading.Lock()
    writer = JsonlWriter(out_dir / RESULTS_FILE)

    def record(rec: Record) -> None:
        with write_lock:
            writer.write(rec)
            result.records.append(rec)
        if on_record:
            on_record(rec)

    def say(msg: str) -> None:
        if on_message:
            on_message(msg)

    def device_worker(profile: Profile) -> None:
        try:
            with device_lock(profile.name, on_wait=say):
                _run_device(profile, artifacts, run_id, overrides, record, on_event, result)
        except Exception as e:  # a bug in one device's thread must not lose the others' results
            say(f"[{profile.name}] internal error: {e!r}")
            raise

    threads = [threading.Thread(target=device_worker, args=(p,), name=f"device-{p.name}") for p in profiles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    meta["finished_at"] = now_rfc3339()
    meta["bytes_sent"] = result.bytes_sent
    (out_dir / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    return result


def _run_device(profile: Profile, artifacts: list[ArtifactInfo], run_id: str, overrides: RunOverrides,
                record: Callable[[Record], None], on_event: EventSink | None, result: FarmResult) -> None:
    try:
        session = DeviceSession(profile)
    except DeviceError as e:
        status = "device_lost" if isinstance(e, DeviceLost) else "error"
        for a in artifacts:
            record(failed_record(profile, a, run_id, status, f"device not usable: {e}"))
        return
    try:
        lost: str | None = None
        blocked = blockers(profile, session.fingerprint, artifacts)
        for a in artifacts:
            if lost is not None:
                record(failed_record(profile, a, run_id, "device_lost", f"not run: device lost earlier ({lost})"))
                continue
            if a.name in blocked:
                record(failed_record(profile, a, run_id, "error", blocked[a.name]))
                continue
            rec = session.run_artifact(a, run_id, overrides, on_event)
            record(rec)
            if rec.status == "device_lost":
                lost = rec.message or "connection dropped"
        result.bytes_sent[profile.name] = session.bytes_sent
    finally:
        session.close()
