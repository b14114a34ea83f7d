"""`--baseline`: a run directory (as before), or chosen from the store by what it means.

    last-pass:BRANCH   per device x artifact name, the newest ok record on BRANCH whose gate passed
    TAG                a tag set with `edgefarm history tag RUN TAG` (e.g. release:1.4)
    RUN_ID             a run recorded in the store
    DIR                a run directory or results.jsonl, as today

An existing path always wins, so a directory that happens to be called like a tag is still read as one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError
from harness.history.db import ENV_VAR, configured_url
from harness.history.store import Store
from harness.records import Record, load_run

LAST_PASS = "last-pass:"


class NoBaseline(UserError):
    """The store answered, and nothing in it matches (no passing run yet, an unknown tag or run id)."""


@dataclass(frozen=True)
class Baseline:
    records: list[Record]
    description: str  # what to print and put in the report as the baseline's name


def resolve_baseline(spec: str, *, db: str | None = None) -> Baseline:
    """Turn a --baseline value into records; every failure is one UserError naming the value."""
    path = Path(spec)
    if path.exists():
        return Baseline(load_run(path), spec)
    url = configured_url(db)
    if url is None:
        raise UserError(f"--baseline {spec!r}: no such run directory, and no results store is configured",
                        hint="a directory, or set EDGEFARM_DB for last-pass:BRANCH, tags and run ids")
    with Store(url) as store:
        if spec.startswith(LAST_PASS):
            branch = spec.removeprefix(LAST_PASS)
            if not branch:
                raise UserError(f"--baseline {spec!r}: name a branch, e.g. last-pass:main")
            records, runs = store.last_pass(branch)
            if not records:
                raise NoBaseline(f"--baseline {spec!r}: no run on branch '{branch}' passed its gate in {url}",
                                hint="record gated runs with `edgefarm history add RUN --gate GATE_JSON`")
            return Baseline(records, f"{spec} ({', '.join(runs)})")
        run_id = store.tagged(spec)
        if run_id is not None:
            return Baseline(store.run_records(run_id), f"{spec} ({run_id})")
        if store.has_run(spec):
            return Baseline(store.run_records(spec), spec)
    raise NoBaseline(f"--baseline {spec!r}: not a directory, a tag, a run id in {url}, or last-pass:BRANCH")


_RESOLVED: dict[tuple[str, str], list[Record]] = {}


def baseline_records(spec: str | None) -> list[Record] | None:
    """For the places that parse --baseline: None when none was given. Resolved once per process (a pytest
    session asks for every generated test), so every test of a session judges against the same records."""
    if not spec:
        return None
    key = (spec, os.environ.get(ENV_VAR, ""))
    if key not in _RESOLVED:
        _RESOLVED[key] = resolve_baseline(spec).records
    return _RESOLVED[key]
