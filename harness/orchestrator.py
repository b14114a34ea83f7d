"""The one orchestrator behind `edgefarm run` and the pytest plugin: lease -> session -> run -> writer.

A lease is the device lock plus an open DeviceSession (agent staged, fingerprinted once, runtimes probed);
every cell (device x artifact) ends as exactly one record in results.jsonl, whatever happens: a device that
cannot be used, a bug in a worker, a signal. `cancel` stops what runs on every device through its transport;
locks are released only after the session (and with it the device's processes) is closed.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from harness.errors import ConfigError, DeviceError, DeviceLost, UserError
from harness.interleave import PairPlan, run_pair
from harness.launches import combine, split_overrides
from harness.locks import device_lock
from harness.manifest import Cell, Manifest, has_results, read_manifest, recorded, unique_artifacts
from harness.profiles import Profile
from harness.records import RESULTS_FILE, ArtifactInfo, JsonlWriter, Record
from harness.runner import DeviceSession, EventSink, RunOverrides, build_spec, failed_record
from harness.transports import Transport

EXIT_OK, EXIT_USAGE, EXIT_DEVICE, EXIT_NOT_OK, EXIT_INTERNAL = 0, 2, 3, 4, 70
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


def stop_device_work(transport: Transport) -> bool:
    """Stop what the transport started on its device (agent and model process groups), bounded in time;
    True when every stop was confirmed (Transport.cancel)."""
    return transport.cancel()


def check_workloads(profiles: Sequence[Profile], artifacts: Sequence[ArtifactInfo], overrides: RunOverrides) -> None:
    """A workload the spec refuses (NaN, an unknown key) is a usage error before anything runs, naming where it
    came from: the profile's [run] table, or --spec-json."""
    for p in profiles:
        for a in artifacts:
            try:
                build_spec(p, a.path, a.format, overrides, None, sha256=a.sha256)
            except ConfigError as e:
                if not overrides.extra:
                    raise
                try:
                    build_spec(p, a.path, a.format, replace(overrides, extra={}), None, sha256=a.sha256)
                except ConfigError:
                    raise e from None
                raise UserError(f"--spec-json: {e.message.split(': ', 2)[-1]}") from None


def prepare_out(out_dir: Path, *, resume: bool) -> Manifest | None:
    """Make the run directory; refuse one that already holds a run unless resuming (then return its manifest)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: is a file, not a directory")
    if resume:
        if not has_results(out_dir):
            raise UserError(f"--resume: {out_dir} holds no run to resume")
        return read_manifest(out_dir)
    if out_dir.is_dir() and has_results(out_dir):
        raise UserError(f"--out {out_dir}: already holds a run; choose another directory, or pass --resume "
                        "to re-run what did not finish ok")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out_dir}: cannot create it: {e.strerror}") from None
    return None


class Orchestrator:
    """Plans the cells, leases devices, runs cells, streams every record, decides the run's exit code."""

    def __init__(self, profiles: Sequence[Profile], artifacts: Sequence[ArtifactInfo], out_dir: Path,
                 overrides: RunOverrides, run_id: str, *, resume: bool = False, owner: bool = True,
                 on_event: EventSink | None = None, on_record: Callable[[Record], None] | None = None,
                 on_message: Callable[[str], None] | None = None, processes: int | None = None,
                 pair: PairPlan | None = None) -> None:
        self.profiles = {p.name: p for p in profiles}
        self.pair = pair  # --baseline-artifact: both artifacts measured in one interleaved session per device
        self.processes = processes  # --processes: agent launches per cell (None: the profile's [run] processes)
        self.min_processes = 1  # raised by a caller that gates against a baseline with relative rules
        if pair is not None:
            artifacts = [pair.candidate, pair.baseline]
        self.artifacts = unique_artifacts(artifacts)
        self.out_dir, self.overrides = out_dir, overrides
        self.on_event, self.on_record, self.on_message = on_event, on_record, on_message
        self.owner = owner  # the process that writes run.json (the pytest controller, not its xdist workers)
        self.prior: dict[Cell, str] = {}  # resume: each cell's status from earlier attempts
        self.manifest = Manifest(run_id, [p.name for p in profiles], self.artifacts)
        check_workloads(profiles, self.artifacts, overrides)
        if owner:
            previous = prepare_out(out_dir, resume=resume)
            if previous is not None:  # resume: same run id, the union of both plans, ok cells kept
                self.manifest.run_id, self.manifest.started_at = previous.run_id, previous.started_at
                self.manifest.devices = list(dict.fromkeys(previous.devices + self.manifest.devices))
                self.manifest.artifacts = unique_artifacts(previous.artifacts + self.artifacts)
                self.prior = recorded(out_dir)
            self.manifest.write(out_dir)
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = self.manifest.run_id
        self.records: list[Record] = []
        self.bytes_sent: dict[str, int] = {}
        self.unusable: dict[str, str] = {}  # device -> why it could not be used
        self.internal_errors: list[str] = []
        self.write_error: str | None = None
        self.interrupted: str | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._live: dict[str, DeviceSession] = {}
        self._writer: JsonlWriter | None = None

    # -- the writer ---------------------------------------------------------------------------------------
    def record(self, rec: Record) -> None:
        """Stream one record (fsynced); a write that fails (a full disk) stops the run, keeping it in memory."""
        with self._lock:
            self.records.append(rec)
            if self.write_error is None:
                try:
                    if self._writer is None:
                        self._writer = JsonlWriter(self.out_dir / RESULTS_FILE)
                    self._writer.write(rec)
                except OSError as e:
                    self.write_error = f"{self.out_dir / RESULTS_FILE}: cannot write results: {e.strerror}"
        if self.write_error is not None and not self._cancel.is_set():
            self.say(f"edgefarm: {self.write_error}; stopping the run")
            self.cancel(None)
        if self.on_record:
            self.on_record(rec)

    def say(self, msg: str) -> None:
        if self.on_message:
            self.on_message(msg)

    # -- leases and cells ---------------------------------------------------------------------------------
    @contextmanager
    def lease(self, profile: Profile) -> Iterator[DeviceSession]:
        """The device lock, then a session; on exit the session closes before the lock is released."""
        with ExitStack() as held:
            try:
                held.enter_context(device_lock(profile.name, on_wait=self.say, stop=self._cancel))
            except TimeoutError as e:
                raise DeviceError(profile.name, str(e)) from None
            if self._cancel.is_set():
                raise DeviceError(profile.name, self.interrupt_message())
            session = DeviceSession(profile)
            with self._lock:
                self._live[profile.name] = session
            try:
                yield session
            finally:
                with self._lock:
                    self._live.pop(profile.name, None)
                self.bytes_sent[profile.name] = session.bytes_sent
                session.close()

    def todo(self, device: str) -> list[ArtifactInfo]:
        return [a for a in self.artifacts if self.prior.get((device, a.sha256)) != "ok"]

    def run_cell(self, session: DeviceSession, artifact: ArtifactInfo) -> Record:
        """Run one cell (after the pre-run runtime check) and record it; never raises."""
        profile = session.profile
        if self._cancel.is_set():
            rec = failed_record(profile, artifact, self.run_id, "error", self.interrupt_message())
        elif (why := session.blocker(artifact)) is not None:
            rec = failed_record(profile, artifact, self.run_id, "error", why)
        else:
            try:
                rec = self.measure(session, artifact)
            except Exception as e:  # a bug: this cell still gets its record, the run exits 70
                rec = failed_record(profile, artifact, self.run_id, "error", self.internal(profile.name, e))
            if self._cancel.is_set() and rec.status != "ok":
                rec.status, rec.message = "error", f"{self.interrupt_message()} ({rec.message or rec.status})"
        self.record(rec)
        return rec

    def measure(self, session: DeviceSession, artifact: ArtifactInfo) -> Record:
        """One cell in `processes` agent launches (harness/launches.py), the measured runs shared out; the
        launches stop at the first that does not end ok, and an interrupted cell is not `ok`."""
        n = self.processes if self.processes is not None else max(session.profile.run.processes, self.min_processes)
        if n <= 1:
            return session.run_artifact(artifact, self.run_id, self.overrides, self.on_event)
        o = split_overrides(session.profile, artifact, self.overrides, n)
        done: list[tuple[int, Record]] = []
        for i in range(n):
            done.append((i, session.run_artifact(artifact, self.run_id, o, self.on_event)))
            if done[-1][1].status != "ok" or self._cancel.is_set():
                break
        rec = combine(done, "launch")
        if rec.status == "ok" and len(done) < n:
            rec.status, rec.message = "error", f"{self.interrupt_message()} after {len(done)} of {n} launches"
        return rec

    def run_pair(self, session: DeviceSession, pair: PairPlan) -> list[Record]:
        """The interleaved A/B session on one device (harness/interleave.py); never raises."""
        try:
            recs = run_pair(session, pair, self.run_id, self.overrides, self.on_event, self._cancel.is_set,
                            self.interrupt_message)
        except Exception as e:  # a bug: both cells still get their record, the run exits 70
            why = self.internal(session.profile.name, e)
            recs = [failed_record(session.profile, a, self.run_id, "error", why) for a in (pair.candidate,
                                                                                          pair.baseline)]
        for r in recs:
            self.record(r)
        return recs

    def run_device(self, profile: Profile) -> None:
        """A farm worker: every cell of one device, in order. Each unfinished cell still gets a record."""
        todo = self.todo(profile.name)
        done: set[str] = set()
        status, why = "error", ""
        try:
            with self.lease(profile) as session:
                lost: str | None = None
                if self.pair is not None:
                    done.update(r.artifact.sha256 for r in self.run_pair(session, self.pair))
                    todo = []
                for a in todo:
                    if lost is not None:
                        self.record(failed_record(profile, a, self.run_id, "device_lost",
                                                  f"not run: device lost earlier ({lost})"))
                    else:
                        rec = self.run_cell(session, a)
                        if rec.status == "device_lost":
                            lost = rec.message or "connection dropped"
                    done.add(a.sha256)
        except (DeviceError, UserError) as e:
            if self._cancel.is_set():
                why = self.interrupt_message()
            else:
                status = "device_lost" if isinstance(e, DeviceLost) else "error"
                why = f"device not usable: {e}"
                with self._lock:
                    self.unusable[profile.name] = str(e)
                self.say(f"[{profile.name}] {why}")
        except Exception as e:  # a bug in this device's thread must not lose anyone's cells
            why = self.internal(profile.name, e)
        for a in todo:
            if a.sha256 not in done:
                self.record(failed_record(profile, a, self.run_id, status,
                                          why or self.interrupt_message()))

    def internal(self, device: str, e: BaseException) -> str:
        msg = f"internal error: {type(e).__name__}: {e}"
        with self._lock:
            self.internal_errors.append(f"[{device}] {msg}")
        traceback.print_exception(e, file=sys.stderr)  # a bug keeps its traceback
        return msg

    # -- cancellation -------------------------------------------------------------------------------------
    def interrupt_message(self) -> str:
        return f"interrupted ({self.interrupted})" if self.interrupted else "interrupted (the run was stopped)"

    def select(self, cells: set[Cell]) -> None:
        """Narrow the plan to the cells a test selection kept (pytest -k/-m): the rest are deselected on purpose,
        written as such in run.json, and never count as missing."""
        every = self.manifest.every
        if set(every) <= cells:
            return
        self.manifest.selected = [c for c in every if c in cells]
        if self.owner:
            self.manifest.write(self.out_dir)

    def mark_interrupted(self, signame: str) -> None:
        """Record the signal and let no further cell start (cheap: safe in a signal handler)."""
        if self.interrupted is None:
            self.interrupted = signame
        self._cancel.set()

    def cancel(self, signame: str | None) -> None:
        """Stop every device's work now (agent and model process groups) and run no further cell."""
        if signame:
            self.mark_interrupted(signame)
        self._cancel.set()
        with self._lock:
            sessions = list(self._live.values())
        for s in sessions:
            try:
                if not stop_device_work(s.transport):
                    self.say(f"[{s.profile.name}] could not confirm that its agent and model stopped")
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                self.say(f"[{s.profile.name}] could not stop its work: {e}")

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- the end --------------------------------------------------------------------------------------------
    def statuses(self) -> dict[Cell, str]:
        """Each cell's latest status, earlier attempts included."""
        return {**self.prior, **{(r.device.name, r.artifact.sha256): r.status for r in self.records}}

    def missing(self) -> list[Cell]:
        have = self.statuses()
        return [c for c in self.manifest.planned if c not in have]

    def exit_code(self) -> int:
        """Signals override; then a write failure (2), a bug (70), a device not used (3), a run not ok (4)."""
        if self.interrupted:
            return EXIT_SIGNAL.get(self.interrupted, 130)
        if self.write_error:
            return EXIT_USAGE
        if self.internal_errors:
            return EXIT_INTERNAL
        got = self.statuses().values()
        if self.unusable or self.missing() or "device_lost" in got:
            return EXIT_DEVICE
        if any(s != "ok" for s in got):
            return EXIT_NOT_OK
        return EXIT_OK

    def finish(self, exit_code: int | None = None) -> int:
        """Close the writer and complete run.json (finished_at, interrupted, exit code)."""
        code = self.exit_code() if exit_code is None else exit_code
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        if self.owner:
            from harness.records import now_rfc3339

            self.manifest.finished_at = now_rfc3339()
            self.manifest.interrupted = self.interrupted
            self.manifest.exit_code = code
            try:
                self.manifest.write(self.out_dir)
            except UserError as e:
                self.write_error = self.write_error or str(e)
        return code


@contextmanager
def stop_on_signals(orch: Orchestrator) -> Iterator[None]:
    """SIGINT/SIGTERM cancel the run (in the main thread only, where Python delivers signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if orch.interrupted:
            return
        orch.mark_interrupted(name)
        orch.say(f"edgefarm: {name}: stopping the agents on every device; finished results are kept")
        threading.Thread(target=orch.cancel, args=(None,), name="edgefarm-cancel", daemon=True).start()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
