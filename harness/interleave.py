"""Interleaved A/B on one device: a candidate and its baseline artifact measured in one device session.

`edgefarm run --artifact new --baseline-artifact old`: under one device lock and one transport session, one
shared warmup launch of each (discarded: page cache, frequency ramp, first-touch of the agent), then blocks in
ABBA order (A B B A A B B A ...), each block a fresh agent launch with the artifact's run control shared out
over its blocks. Drift, thermals and neighbours then hit both artifacts alike, and each adjacent A/B pair is a
paired observation for the gate (agents.runlevel.paired_ratio). Each artifact keeps one record with its blocks
and a `Pairing` naming the session and its partner; the baseline's record is the reference (the gate does
not judge its budgets).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness.launches import MAX_OVER_LAUNCHES, combine, split_overrides
from harness.records import ArtifactInfo, InterleaveUnit, Pairing, PairRole, Record
from harness.runner import DeviceSession, EventSink, RunOverrides, failed_record


ROLES: tuple[PairRole, PairRole] = ("candidate", "baseline")
ALTERNATE_EVERY = 1  # --interleave requests: requests per turn (A B, B A, ...): the tightest pairing


@dataclass(frozen=True)
class PairPlan:
    """What `--baseline-artifact` asks for: a candidate, its baseline, blocks per artifact (None: profile's)."""

    candidate: ArtifactInfo
    baseline: ArtifactInfo
    blocks: int | None = None
    unit: InterleaveUnit | None = None  # None: the profile's run.interleave_unit


def abba(blocks_each: int) -> list[PairRole]:
    """The session's order of roles: A B, B A, A B, ... (each pair adjacent, each role first half the time)."""
    out: list[PairRole] = []
    for i in range(blocks_each):
        out += ["candidate", "baseline"] if i % 2 == 0 else ["baseline", "candidate"]
    return out


def run_pair(session: DeviceSession, plan: PairPlan, run_id: str, overrides: RunOverrides,
             on_event: EventSink | None, cancelled: Callable[[], bool],
             interrupt_message: Callable[[], str]) -> list[Record]:
    """Measure the pair; returns the candidate's and the baseline's record (in that order), whatever happens:
    a launch that does not end ok stops the session, what finished is kept in the records' blocks."""
    profile = session.profile
    k = plan.blocks or profile.run.interleave_blocks
    arts: dict[PairRole, ArtifactInfo] = {"candidate": plan.candidate, "baseline": plan.baseline}
    partner: dict[PairRole, ArtifactInfo] = {"candidate": plan.baseline, "baseline": plan.candidate}
    sid = uuid.uuid4().hex[:12]
    for role, art in arts.items():
        why = session.blocker(art)
        if why is not None:
            other: PairRole = "baseline" if role == "candidate" else "candidate"
            return _ordered({role: failed_record(profile, art, run_id, "error", why),
                             other: failed_record(profile, arts[other], run_id, "error",
                                                  f"not run: its interleaved partner {art.name} cannot run here")})
    per_block = {r: split_overrides(profile, a, overrides, k) for r, a in arts.items()}
    done: dict[PairRole, list[tuple[int, Record]]] = {"candidate": [], "baseline": []}
    stopped: Record | None = None  # the launch that ended the session early
    warm: dict[PairRole, Record] = {}
    for role in ROLES:  # the shared warmup (each artifact alone: its memory figures when alternating requests)
        if cancelled():
            break
        w = session.run_artifact(arts[role], run_id, per_block[role], on_event)
        warm[role] = w
        if w.status != "ok":
            w.message = f"warmup launch: {w.message or w.status}"
            stopped = w
            break
    unit = plan.unit or profile.run.interleave_unit
    order = abba(k)
    if stopped is None and unit == "requests":
        for j in range(k):  # launch j holds block j of both; the one loaded first alternates with j
            if cancelled():
                break
            first: PairRole = "candidate" if j % 2 == 0 else "baseline"
            second: PairRole = "baseline" if first == "candidate" else "candidate"
            r1, r2 = session.run_alternating(arts[first], arts[second], ALTERNATE_EVERY, run_id, per_block[first],
                                             on_event)
            done[first].append((2 * j, r1))
            done[second].append((2 * j + 1, r2))
            if r1.status != "ok" or r2.status != "ok":
                stopped = r1 if r1.status != "ok" else r2
                break
    elif stopped is None:
        for j, role in enumerate(order):
            if cancelled():
                break
            rec = session.run_artifact(arts[role], run_id, per_block[role], on_event)
            done[role].append((j, rec))
            if rec.status != "ok":
                stopped = rec
                break
    out: dict[PairRole, Record] = {}
    ran = sum(len(v) for v in done.values())
    finished = sum(1 for v in done.values() for _, r in v if r.status == "ok")
    for role in ROLES:
        art = arts[role]
        if done[role]:
            rec = combine(done[role], role)
            if unit == "requests" and role in warm and warm[role].status == "ok":
                _own_memory(rec, warm[role])
        elif role in warm and warm[role].status != "ok":
            rec = warm[role]
        else:
            why = interrupt_message() if cancelled() else \
                f"not run: the interleaved session stopped ({stopped.status if stopped else 'no launch'})"
            rec = failed_record(profile, art, run_id, "device_lost" if stopped is not None and
                                stopped.status == "device_lost" else "error", why)
        if cancelled() and (ran < len(order) or stopped is not None):  # the signal's doing, whatever the launch said
            was = "" if rec.status == "ok" or rec.message is None else f" ({rec.message})"
            rec.status = "error"
            rec.message = f"{interrupt_message()} after {finished} of {len(order)} blocks; finished blocks kept{was}"
        elif rec.status == "ok" and ran < len(order) and stopped is not None and stopped.status == "device_lost":
            rec.status, rec.message = "device_lost", f"interleaved session ended early: {stopped.message}"
        rec.pairing = Pairing(session=sid, role=role, partner_sha256=partner[role].sha256, order="ABBA",
                              blocks_each=k, unit=unit)
        out[role] = rec
    return _ordered(out)


def _own_memory(rec: Record, alone: Record) -> None:
    """Memory (and peak power) figures from the artifact's own launch: the alternating launches held both models."""
    for name in MAX_OVER_LAUNCHES:
        m = alone.metrics.get(name)
        if m is not None:
            rec.metrics[name] = replace(m, note="from this artifact's own (warmup) launch: the alternating launches "
                                                "held both models")
    rec.refresh_headroom()


def _ordered(recs: dict[PairRole, Record]) -> list[Record]:
    return [recs["candidate"], recs["baseline"]]
