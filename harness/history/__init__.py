"""The results store: history of runs, baselines chosen from it, trends, device leases across hosts.

SQLite by default (a file path in EDGEFARM_DB), PostgreSQL for a farm on several hosts
(EDGEFARM_DB=postgresql://...). Nothing here runs unless a store is configured.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.errors import UserError
from harness.history.db import ENV_VAR, configured_url
from harness.history.ingest import read_run
from harness.history.store import IngestResult, Store


def add_run(run_dir: Path, *, db: str | None = None, gate_file: Path | None = None) -> IngestResult:
    """Record a run directory in the configured store (idempotent)."""
    url = configured_url(db)
    if url is None:
        raise UserError("no results store configured", hint=f"set {ENV_VAR} or pass --db")
    data = read_run(run_dir, gate_file=gate_file)
    with Store(url) as store:
        return store.ingest(data)


def maybe_ingest(run_dir: Path) -> IngestResult | None:
    """Called at the end of `edgefarm run` and a pytest session: record the run when a store is configured.

    A store that cannot be written does not change the run's exit code (its results are in the run directory);
    it is said loudly on stderr, and `edgefarm history add RUN_DIR` records it later.
    """
    try:
        if configured_url() is None:
            return None
        return add_run(run_dir)
    except UserError as e:
        print(f"edgefarm: warning: run {run_dir} not recorded in the results store: {e}", file=sys.stderr)
        return None


__all__ = ["add_run", "maybe_ingest"]
