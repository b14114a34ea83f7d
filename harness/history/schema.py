"""The results store's schema, as numbered migrations shared by SQLite and PostgreSQL.

A migration is a list of statements applied in one transaction, and its number is recorded in
`edgefarm_schema`; a store opened by an older edgefarm than its schema is refused rather than misread.
Statements are written in the SQL both engines accept; `{id}` is the engine's auto-increment key type.
"""

from __future__ import annotations

# Append only: never edit a migration that has shipped, add the next one.
MIGRATIONS: list[list[str]] = [
    [  # 1: runs, their records, the metrics of each record (denormalised for trend queries), tags, leases
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            ingested_at TEXT NOT NULL,
            branch TEXT,
            commit_sha TEXT,
            repo TEXT,
            harness_version TEXT,
            host TEXT,
            verdict TEXT,
            exit_code INTEGER,
            interrupted TEXT,
            source TEXT,
            manifest TEXT)""",
        "CREATE INDEX runs_branch_started ON runs (branch, started_at)",
        """CREATE TABLE records (
            id {id},
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            device TEXT NOT NULL,
            artifact TEXT NOT NULL,
            artifact_sha256 TEXT NOT NULL,
            status TEXT NOT NULL,
            outcome TEXT,
            started_at TEXT NOT NULL,
            fingerprint TEXT,
            body TEXT NOT NULL,
            UNIQUE (run_id, device, artifact_sha256))""",
        "CREATE INDEX records_cell ON records (device, artifact, started_at)",
        """CREATE TABLE metrics (
            record_id INTEGER NOT NULL REFERENCES records (id),
            device TEXT NOT NULL,
            artifact TEXT NOT NULL,
            metric TEXT NOT NULL,
            started_at TEXT NOT NULL,
            value DOUBLE PRECISION,
            ci_low DOUBLE PRECISION,
            ci_high DOUBLE PRECISION,
            n INTEGER,
            PRIMARY KEY (device, artifact, metric, started_at, record_id))""",
        """CREATE TABLE tags (
            tag TEXT PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            tagged_at TEXT NOT NULL)""",
        """CREATE TABLE leases (
            device TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            token TEXT NOT NULL,
            acquired_at TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL)""",
    ],
    [  # 2: field telemetry (harness/telemetry/store_db.py): windows per model x device class, sampled outputs
        """CREATE TABLE telemetry_windows (
            model TEXT NOT NULL,
            model_version TEXT,
            device_class TEXT NOT NULL,
            window_end DOUBLE PRECISION NOT NULL,
            window_s DOUBLE PRECISION NOT NULL,
            source TEXT,
            ingested_at TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (model, device_class, window_end, window_s))""",
        "CREATE INDEX telemetry_windows_version ON telemetry_windows (model_version, window_end)",
        """CREATE TABLE telemetry_samples (
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            device_class TEXT NOT NULL,
            prompt_id TEXT NOT NULL,
            t DOUBLE PRECISION NOT NULL,
            output TEXT NOT NULL,
            PRIMARY KEY (model, device_class, prompt_id, t))""",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS edgefarm_schema (version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
