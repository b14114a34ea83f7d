"""State the pytest plugin keeps for one pytest process: devices opened, results measured, gate verdicts.

Held in `config.stash`; devices are opened lazily under their device lock and held until the session ends,
so under pytest-xdist (with --dist loadgroup) exactly one worker ever drives a device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DeviceError, UserError
from harness.history.baseline import baseline_records
from harness.locks import device_lock
from harness.profiles import Profile
from harness.records import RESULTS_FILE, ArtifactInfo, JsonlWriter, Record
from harness.runner import DeviceSession, RunOverrides


@dataclass
class ArtifactEntry:
    path: Path
    info: ArtifactInfo | None
    error: str | None  # why it cannot be used (unknown format, truncated): its tests fail with this


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
    sessions: dict[str, DeviceSession] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    results: dict[tuple[str, str], Record] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _writer: JsonlWriter | None = None

    def session(self, device: str) -> DeviceSession:
        """The open session for a device; raises DeviceError (remembered) when it cannot be reached."""
        if device in self.unreachable:
            raise DeviceError(device, self.unreachable[device])
        if device not in self.sessions:
            try:
                self._stack.enter_context(device_lock(device))
                self.sessions[device] = DeviceSession(self.profiles[device])
            except (DeviceError, UserError) as e:
                self.unreachable[device] = str(e)
                raise DeviceError(device, str(e)) from None
        return self.sessions[device]

    def result(self, device: str, artifact: ArtifactInfo) -> Record:
        """Measure once per (device, artifact) per process; stream it to the run directory."""
        key = (device, artifact.name)
        if key not in self.results:
            rec = self.session(device).run_artifact(artifact, self.run_id, self.overrides)
            if self._writer is None:
                self._writer = JsonlWriter(self.out_dir / RESULTS_FILE)
            self._writer.write(rec)
            self.results[key] = rec
        return self.results[key]

    def artifact_names(self) -> list[str]:
        return [a.path.name for a in self.artifacts]

    def baseline(self) -> list[Record] | None:
        return baseline_records(str(self.baseline_dir)) if self.baseline_dir else None

    def close(self) -> None:
        for s in self.sessions.values():
            s.close()
        self.sessions.clear()
        if self._writer:
            self._writer.close()
        self._stack.close()
