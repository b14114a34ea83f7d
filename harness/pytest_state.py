"""State the pytest plugin keeps for one pytest process: devices leased, results measured, gate verdicts.

Held in `config.stash`. The work itself is the orchestrator's (harness/orchestrator.py), the same one
`edgefarm run` uses: devices are leased lazily (device lock, then a session with the pre-run runtime check)
and held until the session ends, so under pytest-xdist (with --dist loadgroup) exactly one worker ever
drives a device. Every cell this process was responsible for ends as one record in results.jsonl.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DeviceError, HostKeyMismatch, UserError
from harness.history.baseline import baseline_records
from harness.interleave import PairPlan
from harness.orchestrator import Orchestrator
from harness.profiles import Profile
from harness.records import ArtifactInfo, Record
from harness.runner import DeviceSession, RunOverrides, failed_record


@dataclass
class ArtifactEntry:
    path: Path
    info: ArtifactInfo | None
    error: str | None  # why it cannot be used (unknown format, truncated): its tests fail with this


def must_fail(e: DeviceError, skip_unreachable: bool) -> bool:
    """An unreachable device fails the session unless skipping was asked for; a changed host key always fails."""
    return isinstance(e, HostKeyMismatch) or not skip_unreachable


@dataclass
class EdgefarmState:
    profiles: dict[str, Profile]
    devices: list[str]
    artifacts: list[ArtifactEntry]
    out_dir: Path
    run_id: str
    policy_path: Path | None
    baseline_dir: Path | None
    golden_path: Path | None
    overrides: RunOverrides
    orch: Orchestrator
    skip_unreachable: bool = False
    pair: PairPlan | None = None  # --baseline-artifact: the pair measured in one interleaved session per device
    sessions: dict[str, DeviceSession] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    results: dict[tuple[str, str], Record] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def session(self, device: str) -> DeviceSession:
        """The leased session for a device; raises DeviceError (remembered) when it cannot be used.

        The first failure records an `error` for each of the device's cells, so the run stays complete.
        """
        if device in self.unreachable:
            raise DeviceError(device, self.unreachable[device])
        if device not in self.sessions:
            profile = self.profiles[device]
            try:
                self.sessions[device] = self._stack.enter_context(self.orch.lease(profile))
            except (DeviceError, UserError) as e:
                self.unreachable[device] = str(e).removeprefix(f"device '{device}': ")
                self.orch.unusable[device] = str(e)
                for a in self.orch.todo(device):
                    self._store(failed_record(profile, a, self.run_id, "error", f"device not usable: {e}"))
                if isinstance(e, DeviceError):
                    raise
                raise DeviceError(device, str(e)) from None
        return self.sessions[device]

    def _store(self, rec: Record) -> None:
        key = (rec.device.name, rec.artifact.sha256)
        if key not in self.results:
            self.orch.record(rec)
            self.results[key] = rec

    def result(self, device: str, artifact: ArtifactInfo) -> Record:
        """Measure once per (device, artifact) per process; stream it to the run directory."""
        session = self.session(device)  # raises, every time, for a device that cannot be used
        key = (device, artifact.sha256)
        if key not in self.results and self.pair is not None and artifact.sha256 in (
                self.pair.candidate.sha256, self.pair.baseline.sha256):
            for r in self.orch.run_pair(session, self.pair):  # both records at once, from one session
                self.results[(device, r.artifact.sha256)] = r
        if key not in self.results:
            self.results[key] = self.orch.run_cell(session, artifact)
        return self.results[key]

    def partner(self, rec: Record) -> Record | None:
        """The other record of rec's interleaved A/B session, when this process measured it."""
        if rec.pairing is None:
            return None
        return self.results.get((rec.device.name, rec.pairing.partner_sha256))

    def artifact_names(self) -> list[str]:
        return [a.path.name for a in self.artifacts]

    def baseline(self) -> list[Record] | None:
        return baseline_records(str(self.baseline_dir)) if self.baseline_dir else None

    def record_unfinished(self, devices: list[str]) -> None:
        """After an interruption: an `error` record for each cell of these devices that has none."""
        for d in devices:
            for a in self.orch.todo(d):
                self._store(failed_record(self.profiles[d], a, self.run_id, "error", self.orch.interrupt_message()))

    def close(self) -> None:
        """Sessions close (their devices' processes end) before the device locks are released."""
        self._stack.close()
        self.sessions.clear()
