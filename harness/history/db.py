"""Connections to the results store: SQLite (embedded default) or PostgreSQL (a farm on many hosts).

Chosen by URL: `EDGEFARM_DB=postgresql://user@host:5432/db`, or a file path / `sqlite:///path` for SQLite.
Both speak DB-API; the one difference our SQL sees is the parameter marker, so queries are written with `?`
and turned into `%s` for psycopg here, in one place.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.errors import UserError
from harness.history.schema import MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE
from harness.records import now_rfc3339

ENV_VAR = "EDGEFARM_DB"
Engine = Literal["sqlite", "postgresql"]
# One advisory lock key for schema migrations, so two hosts opening a new database do not both migrate it.
_MIGRATION_LOCK = 0x6564676566  # "edgef"


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class StoreError(UserError):
    """The store cannot be opened or used: bad URL, server down, a schema newer than this edgefarm."""


@dataclass(frozen=True)
class StoreUrl:
    engine: Engine
    target: str  # a file path (sqlite) or a libpq connection URL (postgresql)

    def __str__(self) -> str:
        if self.engine == "sqlite":
            return self.target
        # Never print a password from the URL.
        head, sep, tail = self.target.rpartition("@")
        return self.target if not sep else head.split("//", 1)[0] + "//***@" + tail


def parse_url(text: str) -> StoreUrl:
    """`postgresql://...` / `postgres://...` -> PostgreSQL; `sqlite:///path` or a plain path -> SQLite."""
    text = text.strip()
    if not text:
        raise StoreError(f"{ENV_VAR} is empty", hint="set it to a file path or a postgresql:// URL")
    if text.startswith(("postgresql://", "postgres://")):
        return StoreUrl("postgresql", text)
    if text.startswith("sqlite://"):
        return StoreUrl("sqlite", text.removeprefix("sqlite://") or ":memory:")
    if "://" in text:
        raise StoreError(f"store URL {text.split('://')[0]}:// is not supported",
                         hint="use a file path (SQLite) or postgresql://user@host/db")
    return StoreUrl("sqlite", text)


def configured_url(explicit: str | None = None) -> StoreUrl | None:
    """--db if given, else $EDGEFARM_DB, else None (no store configured)."""
    text = explicit if explicit is not None else os.environ.get(ENV_VAR)
    return parse_url(text) if text else None


class Connection:
    """A DB-API connection plus the engine's dialect details; used by the store, the leases and migrations."""

    def __init__(self, url: StoreUrl) -> None:
        self.url = url
        self.engine: Engine = url.engine
        self.raw: Any
        if url.engine == "sqlite":
            if url.target != ":memory:":
                Path(url.target).parent.mkdir(parents=True, exist_ok=True)
            try:
                # isolation_level=None: we issue BEGIN ourselves (BEGIN IMMEDIATE takes the write lock up front,
                # so two writers queue on busy_timeout instead of failing mid-transaction).
                self.raw = sqlite3.connect(url.target, timeout=60.0, isolation_level=None,
                                           check_same_thread=False)
                self.raw.execute("PRAGMA journal_mode=WAL")
                self.raw.execute("PRAGMA foreign_keys=ON")
                self.raw.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as e:
                raise StoreError(f"cannot open the SQLite store {url.target}: {e}") from None
        else:
            try:
                import psycopg
            except ImportError:
                raise StoreError("a postgresql:// store needs the psycopg package",
                                 hint="pip install 'edgefarm[postgres]'") from None
            try:
                self.raw = psycopg.connect(url.target, autocommit=True, connect_timeout=10,
                                           application_name="edgefarm")
            except psycopg.Error as e:
                raise StoreError(f"cannot connect to the store {url}: {str(e).strip().splitlines()[0]}") from None

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.engine == "postgresql" else text

    def execute(self, text: str, params: Sequence[Any] = ()) -> Cursor:
        cur: Cursor = self.raw.execute(self.sql(text), tuple(params))
        return cur

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.engine == "postgresql":
            with self.raw.cursor() as cur:
                cur.executemany(self.sql(text), rows)
        else:
            self.raw.executemany(text, rows)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; committed on success, rolled back on any exception."""
        if self.engine == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.raw.execute("ROLLBACK")
                raise
            self.raw.execute("COMMIT")
        else:
            with self.raw.transaction():
                yield self

    def close(self) -> None:
        self.raw.close()


def migrate(conn: Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before. Safe when hosts race."""
    with conn.transaction():
        if conn.engine == "postgresql":
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        conn.execute(VERSION_TABLE)
        row = conn.execute("SELECT MAX(version) FROM edgefarm_schema").fetchone()
        found = int(row[0] or 0)
        if found > SCHEMA_VERSION:
            raise StoreError(f"the store {conn.url} has schema version {found}; this edgefarm knows up to "
                             f"{SCHEMA_VERSION}", hint="upgrade edgefarm on this host")
        auto = "INTEGER PRIMARY KEY AUTOINCREMENT" if conn.engine == "sqlite" else "BIGSERIAL PRIMARY KEY"
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for stmt in MIGRATIONS[version - 1]:
                conn.execute(stmt.replace("{id}", auto))
            conn.execute("INSERT INTO edgefarm_schema (version, applied_at) VALUES (?, ?)", (version, now_rfc3339()))
    return found


def connect(url: StoreUrl) -> Connection:
    """Open and migrate."""
    conn = Connection(url)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn
