"""One device, many artifacts in sequence: stage the agent and each artifact, run, build the Record.

The runner orchestrates; the agent measures. Every failure becomes a Record with a status and a message:
a device that drops is `device_lost`, a hung agent `timeout`, a kernel OOM kill under the cap `oom`.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agents import contention
from agents.protocol import parse_event
from agents.result import AgentResult
from agents.spec import AlternateSpec, SpecError, WorkloadSpec
from harness import deploy, thermal
from harness.devicecheck import blockers
from harness.native.session import NativeAgent, wants_native
from harness.errors import ConfigError, DeviceError, DeviceLost, UserError
from harness.gate.policy import Policy, load_policy
from harness.metrics import METRICS
from harness.profiles import Profile
from harness.run_hooks import AgentRun, hooks_for, settle_status
from harness.provenance import Provenance, PushInfo
from harness.run_sizing import Sizing, size_run
from harness.records import ArtifactInfo, DeviceInfo, Metric, Record, now_rfc3339
from harness.transports import Transport, open_transport
from harness.version import harness_version

EventSink = Callable[[str, str, dict[str, Any]], None]  # (device, artifact name, event)


@dataclass
class RunOverrides:
    """Run control given on the command line; None keeps the profile's value."""

    warmup_runs: int | None = None
    min_runs: int | None = None
    min_s: float | None = None
    max_s: float | None = None
    threads: int | None = None
    timeout_s: float | None = None
    seed: int = 0
    adaptive: tuple[list[float], float] | Literal["decide"] | None = None  # (percentiles, relative CI width):
    # stop when all are met; "decide": stop when every budget is decided (agents/sequential.py)
    extra: dict[str, Any] = field(default_factory=dict)
    policy: Policy | None = None  # the gate policy: sizes each run for what it gates (harness/run_sizing.py)
    relative: bool = True  # size for the policy's relative rules too (off where no baseline will be compared)


def run_sizing(profile: Profile, name: str, fmt: str, o: RunOverrides) -> Sizing | None:
    """What the policy (and the profile's budgets) ask of this cell's run; None without a policy, unless
    --adaptive decide needs the budgets (then the default policy with the profile's budgets)."""
    decide = o.adaptive == "decide" or (o.adaptive is None and profile.run.adaptive_mode == "decide")
    if o.policy is None and not decide:
        return None
    return size_run(profile, (name,), fmt, o.policy or load_policy(), profile.run.gguf_new_tokens,
                    relative=o.relative)


def build_spec(profile: Profile, artifact_remote: str, fmt: str, o: RunOverrides, rlimit_mib: int | None,
               sha256: str | None = None, name: str | None = None) -> WorkloadSpec:
    """The WorkloadSpec for one artifact: profile run control, command-line overrides, the expected sha256,
    and what the policy needs (run sizing; --adaptive decide: the budgets). name: the artifact's file name."""
    r = profile.run
    spec: dict[str, Any] = {
        "artifact": artifact_remote,
        "format": fmt,
        "artifact_sha256": sha256,
        "warmup_runs": o.warmup_runs if o.warmup_runs is not None else r.warmup_runs,
        "warmup_min_s": r.warmup_min_s,
        "min_runs": o.min_runs if o.min_runs is not None else r.min_runs,
        "min_s": o.min_s if o.min_s is not None else r.min_s,
        "max_s": o.max_s if o.max_s is not None else r.max_s,
        "max_runs": r.max_runs,
        "dynamic_dims": dict(r.dynamic_dims),
        "threads": o.threads if o.threads is not None else r.threads,
        "backend": r.backend,  # --backend arrives through o.extra
        "seed": o.seed,
        "timeout_s": o.timeout_s if o.timeout_s is not None else r.timeout_s,
        "pin_cpus": r.pin_cpus,
        "rlimit_as_mib": rlimit_mib,
        "gguf": {"prompt_tokens": r.gguf_prompt_tokens, "new_tokens": r.gguf_new_tokens,
                 "repetitions": r.gguf_repetitions},
    }
    sz = run_sizing(profile, name or Path(artifact_remote).name, fmt, o)
    if sz is not None:
        spec["confidence"] = sz.confidence  # the record's intervals at the gate's confidence
    if o.adaptive == "decide" or (o.adaptive is None and r.adaptive_mode == "decide"):
        assert sz is not None
        # the sequential rule sets the counts: the profile's floors do not apply, the command line's do
        spec["min_runs"] = o.min_runs if o.min_runs is not None else 1
        spec["min_s"] = o.min_s if o.min_s is not None else 0.0
        spec["gguf"]["repetitions"] = 1
        spec["adaptive"] = {"mode": "decide", "gated": sz.gated}
        if not sz.gated:
            raise UserError(f"--adaptive decide: no budget on a statistic applies to {name or Path(artifact_remote).name} "
                            f"on {profile.name}: nothing to decide (policy {sz.policy}, profile "
                            f"{profile.source or profile.name} [budgets])")
    else:
        if sz is not None:
            spec["min_runs"] = max(spec["min_runs"], sz.min_runs)
            spec["gguf"]["repetitions"] = max(spec["gguf"]["repetitions"], sz.gguf_repetitions)
        if isinstance(o.adaptive, tuple):
            spec["adaptive"] = {"percentiles": o.adaptive[0], "rel_width": o.adaptive[1]}
        elif r.adaptive_percentiles:
            spec["adaptive"] = {"percentiles": r.adaptive_percentiles, "rel_width": r.adaptive_rel_width}
    spec.update(o.extra)
    try:
        return WorkloadSpec.from_dict(spec, where=f"workload for device {profile.name}")
    except SpecError as e:
        raise ConfigError(profile.source or profile.name, "run", str(e)) from None


class DeviceSession:
    """An open connection to one device with the agent staged and the device fingerprinted (once)."""

    def __init__(self, profile: Profile, transport: Transport | None = None) -> None:
        self.profile = profile
        self.transport = transport if transport is not None else open_transport(profile)
        try:
            facts = self.transport.facts()  # one round-trip: python and work dir together
            self.python: str | None = facts.python or profile.transport.python
            self.workdir = profile.transport.workdir or facts.workdir or "/tmp/edgefarm"
            self.native = NativeAgent(profile.name, self.transport, profile.native, self.workdir) \
                if wants_native(profile.agent, facts) else None  # no Python on the device: agents/native/agent.sh
            if self.native is not None:
                self.python, self.agent, self.fingerprint = None, self.native.agent, self.native.fingerprint
            else:
                assert self.python is not None
                self.agent = deploy.stage_agent(self.transport, self.python, self.workdir)
                self.fingerprint = deploy.probe(self.transport, self.python, self.agent.remote)
            self.bytes_sent = self.native.bytes_sent if self.native is not None else self.agent.stats.bytes_sent
            self.thermals = thermal.SessionThermals(profile, self.transport)  # idle temperature, once per session
        except BaseException:
            self.transport.close()
            raise

    def device_info(self) -> DeviceInfo:
        return _device_info(self.profile, self.fingerprint.get("fingerprint", {}))

    def blocker(self, artifact: ArtifactInfo) -> str | None:
        """Why this artifact cannot run here (its runtime is missing on the device), from the session's probe."""
        return blockers(self.profile, self.fingerprint, [artifact]).get(artifact.name)

    def close(self) -> None:
        self.transport.close()

    def run_artifact(self, artifact: ArtifactInfo, run_id: str, overrides: RunOverrides,
                     on_event: EventSink | None = None) -> Record:
        """Stage and measure one artifact; never raises for device trouble, returns a Record saying what happened."""
        return self._launch(artifact, None, run_id, overrides, on_event)[0]

    def run_alternating(self, first: ArtifactInfo, second: ArtifactInfo, every: int, run_id: str,
                        overrides: RunOverrides, on_event: EventSink | None = None) -> tuple[Record, Record]:
        """Both artifacts in one model process, their requests alternating in turns of `every` (the agent's
        spec.alternate); a record each, sharing the launch's status. No memory or energy figures: both models
        were resident and measured together."""
        first_rec, second_rec = self._launch(first, (second, every), run_id, overrides, on_event)
        assert second_rec is not None
        return first_rec, second_rec

    def _launch(self, artifact: ArtifactInfo, partner: tuple[ArtifactInfo, int] | None, run_id: str,
                overrides: RunOverrides, on_event: EventSink | None) -> tuple[Record, Record | None]:
        started = now_rfc3339()
        arts = [artifact] if partner is None else [artifact, partner[0]]
        recs = [Record(run_id=run_id, device=self.device_info(), artifact=a, status="error", started_at=started,
                       finished_at=started, provenance=self._provenance()) for a in arts]

        def emit(event: dict[str, Any]) -> None:
            if on_event:
                on_event(self.profile.name, artifact.name, event)

        try:
            remotes = []
            for rec in recs:
                staged = deploy.stage(self.transport, self.python, self.workdir, Path(rec.artifact.path),
                                      progress=lambda done, total: emit({"event": "push", "done": done,
                                                                         "total": total}))
                self.bytes_sent += staged.stats.bytes_sent
                rec.provenance.push = PushInfo(bytes_sent=staged.stats.bytes_sent, skipped=staged.stats.skipped,
                                               seconds=round(staged.stats.seconds, 3), remote_path=staged.remote)
                remotes.append(staged.remote)
            self._measure(recs[0], remotes[0], overrides, emit,
                          None if partner is None else (recs[1], remotes[1], partner[1]))
        except DeviceLost as e:
            for rec in recs:
                rec.status, rec.message = "device_lost", str(e)
        except DeviceError as e:
            for rec in recs:
                rec.status, rec.message = "error", str(e)
        except UserError as e:  # a workload the spec refuses (checked before a run starts; kept as a cell error)
            for rec in recs:
                rec.status, rec.message = "error", f"invalid workload for {artifact.name}: {e}"
        for rec in recs:
            rec.finished_at = now_rfc3339()
        return recs[0], (recs[1] if partner is not None else None)

    def _measure(self, rec: Record, remote: str, o: RunOverrides, emit: Callable[[dict[str, Any]], None],
                 partner: tuple[Record, str, int] | None = None) -> None:
        cap = self.transport.memory_cap
        rlimit = cap.limit_mib if cap is not None and cap.cgroup is None else None
        spec = build_spec(self.profile, remote, rec.artifact.format, o, rlimit, sha256=rec.artifact.sha256,
                          name=rec.artifact.name)
        if self.native is not None and spec.adaptive is not None and spec.adaptive.mode == "decide":
            raise UserError(f"--adaptive decide: device {self.profile.name} runs the native agent, which drives "
                            "the runtimes' own tools and cannot stop on a verdict; run it without --adaptive decide")
        if partner is not None:
            if self.native is not None:
                raise UserError(f"--interleave requests: device {self.profile.name} runs the native agent, which "
                                "runs one model per tool launch; use --interleave launches")
            prec, premote, every = partner
            spec.adaptive = None
            spec.alternate = AlternateSpec(artifact=premote, format=prec.artifact.format,
                                           artifact_sha256=prec.artifact.sha256, every=every)
            spec.check(f"workload for device {self.profile.name}")
        sz = run_sizing(self.profile, rec.artifact.name, rec.artifact.format, o)
        if sz is not None:  # why the counts are what they are
            rec.provenance.run_sizing = {"policy": sz.policy, "why": sz.reasons}
        rec.workload = spec.to_dict()  # replaced by the agent's echo of what it used
        argv = deploy.agent_argv(self.python or "", self.agent.remote, "run",
                                 json.dumps(rec.workload, sort_keys=True, allow_nan=False))
        run = AgentRun(staged_path=remote, format=rec.artifact.format)

        def on_line(line: str) -> None:
            ev = parse_event(line)
            if ev is None:
                return
            if ev.get("event") == "phase":
                run.host_phases.append({"phase": ev.get("phase"), "host_t": time.monotonic(), "device_t": ev.get("t")})
            elif ev.get("event") == "result":
                run.result = ev
            emit(ev)

        line_sink: Callable[[str], None] = on_line
        if self.native is not None:  # the native agent's argv; its output becomes the same events
            argv, line_sink = self.native.command(spec, on_line)
        hooks = hooks_for(self.profile, self.transport, self.thermals, cap, energy_meter=partner is None)
        for hook in hooks:
            hook.before(run)
        try:
            # The agent stops its model at timeout_s itself; this grace is for an agent that hangs.
            limit = spec.timeout_s
            if run.not_run is None:
                run.command = self.transport.run(argv, timeout=limit + min(60.0, max(10.0, 0.25 * limit)),
                                                 on_stdout_line=line_sink)
        finally:
            run.t_end = time.monotonic()
            for hook in hooks:
                hook.after(run)
        both = [(rec, run.result)]
        if partner is not None:
            prec = partner[0]
            prec.workload = dict(rec.workload)
            both.append((prec, _alternate_event(run.result)))
        for r, result in both:
            r.provenance.host_phases = run.host_phases
            if result is not None:
                self._fill_from_agent(r, result)
            settle_status(r, run, cap)
            for hook in hooks:
                hook.finish(r, run)

    def _fill_from_agent(self, rec: Record, event: dict[str, Any]) -> None:
        r = AgentResult.from_dict(event)
        rec.status, rec.message, rec.signal = r.status, r.message, r.signal  # type: ignore[assignment]
        rec.runtime = dict(r.runtime)
        for name, m in r.metrics.items():
            rec.metrics[name] = Metric.from_dict(m)
        rec.samples = {k: [float(x) for x in v] for k, v in r.samples.items()}
        rec.phases = list(r.phases)
        for ph in rec.phases:  # the agent judged its measure phase (agents/contention.py)
            why = ph.get("contended")
            if isinstance(why, str) and why:
                rec.tainted.append(contention.PREFIX + why)
        if r.workload:  # the spec the agent actually used, defaults filled
            rec.workload = dict(r.workload)
        rec.provenance.input_shapes = r.input_shapes
        rec.provenance.artifact_sha256_loaded = r.artifact_sha256
        want = rec.artifact.sha256
        if r.artifact_sha256 is not None and want and r.artifact_sha256 != want:
            rec.status = "error"
            rec.message = (f"artifact sha256 mismatch on the device: expected {want}, the model process loaded "
                           f"{r.artifact_sha256}; figures discarded")
            rec.metrics, rec.samples = {}, {}
        if r.stopping:  # why the measured runs ended (adaptive: interval widths reached, or max_s)
            rec.provenance.stopping = r.stopping
        if r.os_peak_rss_mib is not None:
            rec.provenance.os_peak_rss_mib = r.os_peak_rss_mib
            rec.provenance.os_peak_rss_equals = r.os_peak_rss_equals
        if r.thermal:  # the agent's start/end zone readings beside the controller's
            rec.thermal = {**r.thermal, **(rec.thermal or {})}
        unknown = sorted(set(rec.metrics) - set(METRICS))
        if unknown:
            rec.provenance.unregistered_metrics = unknown

    def _provenance(self) -> Provenance:
        py = self.fingerprint.get("python")
        return Provenance(harness_version=harness_version(), agent_sha256=self.agent.sha256,
                          controller=platform.node(), agent_python=py if isinstance(py, str) else None)


def _alternate_event(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The second model's result in an alternating launch: the launch's shared status, phases and workload, with
    its own bytes, samples and figures (agents.result.AgentResult.alternate); None where the agent said nothing."""
    if result is None:
        return None
    got = result.get("alternate")
    alt: dict[str, Any] = got if isinstance(got, dict) else {}
    out = {k: v for k, v in result.items() if k not in ("alternate", "os_peak_rss_mib", "os_peak_rss_equals")}
    if out.get("status") == "ok" and not alt:
        out.update(status="error", message="the agent reported no figures for the alternate model")
    out.update(samples=alt.get("samples") or {}, metrics=alt.get("metrics") or {},
               artifact_sha256=alt.get("artifact_sha256"), runtime=alt.get("runtime") or {},
               input_shapes=alt.get("input_shapes") or {})
    return out


def _device_info(profile: Profile, fingerprint: dict[str, Any]) -> DeviceInfo:
    return DeviceInfo(name=profile.name, transport=profile.transport.kind, device_class=profile.device_class,
                      ram_mib=profile.ram_mib, fingerprint=fingerprint)


def failed_record(profile: Profile, artifact: ArtifactInfo, run_id: str, status: str, message: str) -> Record:
    """A record for an artifact that never ran (device unreachable, lost before its turn)."""
    t = now_rfc3339()
    if status not in ("error", "device_lost", "skipped"):
        raise UserError(f"internal: bad status {status}")
    return Record(run_id=run_id, device=_device_info(profile, {}), artifact=artifact, status=status,  # type: ignore[arg-type]
                  started_at=t, finished_at=t, message=message, provenance=Provenance(harness_version=harness_version()))
