"""Tests the pytest plugin generates: per device x artifact, one for the run and one per gate rule."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from harness.errors import DeviceError, UserError
from harness.pytest_state import ArtifactEntry, EdgefarmState, must_fail
from harness.records import Record, now_rfc3339


class EdgefarmItem(pytest.Item):
    """One generated check. `kind` is "run" (the benchmark succeeded) or "gate" (one rule passed)."""

    def __init__(self, *, state: EdgefarmState, device: str, artifact: ArtifactEntry, kind: str,
                 rule: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.state, self.device, self.artifact, self.kind, self.rule = state, device, artifact, kind, rule
        self.add_marker(pytest.mark.xdist_group(device))
        self.add_marker(pytest.mark.edgefarm)

    def _record(self) -> Record:
        if self.artifact.info is None:
            pytest.fail(f"artifact unusable: {self.artifact.error}", pytrace=False)
        try:
            rec = self.state.result(self.device, self.artifact.info)
        except DeviceError as e:
            why = f"{e} -- check it with `edgefarm devices` and the profile's [transport] table"
            if must_fail(e, self.state.skip_unreachable):
                pytest.fail(why, pytrace=False)
            pytest.skip(why)
        self.user_properties += [
            ("device", self.device), ("artifact", rec.artifact.name), ("artifact_sha256", rec.artifact.sha256),
            ("harness_version", rec.provenance.harness_version),
            ("device_fingerprint", json.dumps(rec.device.fingerprint, sort_keys=True)[:2000]),
            ("runtime", json.dumps(rec.runtime, sort_keys=True)), ("run_id", rec.run_id),
        ]
        return rec

    def runtest(self) -> None:
        rec = self._record()
        if self.kind == "run":
            if rec.status != "ok":
                pytest.fail(f"{rec.status} on {self.device}: {rec.message or 'no message'}", pytrace=False)
            return
        from harness.gate import evaluate, load_policy

        partner = self.state.partner(rec)  # an interleaved pair is judged together
        report = evaluate([rec] + ([partner] if partner else []), load_policy(self.state.policy_path),
                          baseline=self.state.baseline(),
                          profiles=self.state.profiles, known_artifacts=self.state.artifact_names())
        cell = report.cell(self.device, rec.artifact.name)
        result = next((r for r in (cell.rules if cell else []) if r.rule == self.rule), None)
        if result is None:
            pytest.fail(f"rule '{self.rule}' was not judged for this record (status {rec.status})", pytrace=False)
        self.user_properties.append(("outcome", result.outcome))
        if result.outcome == "pass":
            return
        if result.outcome == "skipped":
            pytest.skip(result.reason)
        if result.outcome == "inconclusive" and not result.blocking:
            pytest.skip(f"inconclusive: {result.reason}")
        pytest.fail(f"{result.outcome}: {result.reason}", pytrace=False)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return (str(self.artifact.path), None, f"edgefarm {self.kind} {self.device} {self.artifact.path.name}")


def _placeholder(state: EdgefarmState, device: str, entry: ArtifactEntry) -> Record:
    from harness.runner import _device_info

    assert entry.info is not None
    t = now_rfc3339()
    return Record(run_id="collect", device=_device_info(state.profiles[device], {}), artifact=entry.info,
                  status="ok", started_at=t, finished_at=t)


def rule_ids(state: EdgefarmState, device: str, entry: ArtifactEntry) -> list[str]:
    """The rules the gate will judge for this device x artifact, known before anything runs."""
    if entry.info is None:
        return []
    from harness.gate import evaluate, load_policy

    recs = [_placeholder(state, device, entry)]
    if state.pair is not None and entry.info.sha256 in (state.pair.candidate.sha256, state.pair.baseline.sha256):
        from harness.records import Pairing

        other = state.pair.baseline if entry.info.sha256 == state.pair.candidate.sha256 else state.pair.candidate
        recs.append(_placeholder(state, device, ArtifactEntry(entry.path, other, None)))
        for r, role in zip(recs, ("candidate", "baseline") if other is state.pair.baseline
                           else ("baseline", "candidate")):
            r.pairing = Pairing("collect", role, (other if r is recs[0] else entry.info).sha256)  # type: ignore[arg-type]
    try:
        report = evaluate(recs, load_policy(state.policy_path),
                          baseline=state.baseline(), profiles=state.profiles, known_artifacts=state.artifact_names())
    except UserError as e:
        raise pytest.UsageError(f"edgefarm: {e}") from None
    cell = report.cell(device, entry.info.name)
    return [r.rule for r in cell.rules if r.kind != "run"] if cell else []


class EdgefarmCollector(pytest.Collector):
    """Parent of the generated items, so their ids read `edgefarm::DEVICE::ARTIFACT::CHECK`."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        return []


def generate_items(session: pytest.Session, state: EdgefarmState) -> list[pytest.Item]:
    root = EdgefarmCollector.from_parent(session, name="edgefarm", nodeid="edgefarm")
    # Under xdist's loadgroup the scheduler groups by the "@group" suffix of a node id; xdist adds it from
    # the xdist_group mark only for items collected before its own hook, so ours carry it themselves.
    group = bool(getattr(session.config.option, "loadgroup", False))
    items: list[pytest.Item] = []
    for device in state.devices:
        at = f"@{device}" if group else ""
        for entry in state.artifacts:
            base = f"{device}::{entry.path.name}"
            items.append(EdgefarmItem.from_parent(root, name=f"{base}::run{at}", state=state, device=device,
                                                  artifact=entry, kind="run"))
            for rule in rule_ids(state, device, entry):
                items.append(EdgefarmItem.from_parent(root, name=f"{base}::gate({rule}){at}", state=state,
                                                      device=device, artifact=entry, kind="gate", rule=rule))
    items.extend(_golden_items(root, state))
    return items


def _golden_items(parent: pytest.Collector, state: EdgefarmState) -> Iterable[pytest.Item]:
    if state.golden_path is None:
        return []
    from harness.golden.pytest_items import golden_items

    items: list[pytest.Item] = golden_items(parent, state)
    return items


def final_gate(state: EdgefarmState) -> list[str]:
    """After all tests: gate the whole run and write the reports; lines for the terminal summary."""
    from harness.records import load_run

    try:
        records = load_run(state.out_dir)
    except UserError:
        return [f"edgefarm: no results in {state.out_dir}"]
    from harness.gate import evaluate, load_policy
    from harness.golden.attach import attach_golden
    from harness.reports import render

    attach_golden(records, state.out_dir)
    report = evaluate(records, load_policy(state.policy_path), baseline=state.baseline(), profiles=state.profiles,
                      run=str(state.out_dir))
    lines = [f"edgefarm gate: {report.summary}"]
    for fmt, name in (("json", "gate.json"), ("md", "report.md"), ("html", "report.html")):
        path = state.out_dir / name
        path.write_text(render(report, fmt), encoding="utf-8")  # type: ignore[arg-type]
        lines.append(f"edgefarm report: {path}")
    from harness.history import maybe_ingest  # the run and its verdict, when EDGEFARM_DB names a store
    maybe_ingest(state.out_dir)
    return lines
