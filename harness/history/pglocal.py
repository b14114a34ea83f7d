"""A throwaway PostgreSQL server on a loopback port in a temporary directory (tests, benchmarks, a trial farm).

Uses the distribution's initdb and pg_ctl (Debian: /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to
run as root, so as root the cluster belongs to an unprivileged system user (`postgres` where the package made
one). Trust authentication on 127.0.0.1 only; fsync off: this server holds nothing worth a power cut.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or no unprivileged user to run them as."""


def pg_bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise PostgresUnavailable("no PostgreSQL server binaries (pg_ctl): apt-get install postgresql")
    return Path(versions[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """initdb + pg_ctl start on 127.0.0.1:<free port>; stop() removes everything."""

    def __init__(self, user: str = "postgres") -> None:
        self.bindir = pg_bindir()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="edgefarm-pg-"))
        self.data = self.dir / "data"
        self.run_as: Callable[[], None] | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                raise PostgresUnavailable(f"running as root and there is no user '{user}' to run PostgreSQL as") \
                    from None
            uid, gid = pw.pw_uid, pw.pw_gid
            os.chown(self.dir, uid, gid)

            def drop() -> None:
                os.setgid(gid)
                os.setuid(uid)
            self.run_as = drop
        self.started = False

    def _run(self, argv: list[str], timeout: float = 120) -> None:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, preexec_fn=self.run_as,
                           cwd=self.dir)
        if r.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(argv[:2])} failed ({r.returncode}): {(r.stderr or r.stdout)[-800:]}")

    def start(self) -> LocalPostgres:
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "edgefarm", "--auth=trust",
                   "--no-sync", "-E", "UTF8", "--locale=C"])
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                   "-w", "-t", "60", "start"])
        self.started = True
        return self

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://edgefarm@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        """A fresh database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')  # name from our own callers, never user input
        return self.url(name)

    def stop(self) -> None:
        if self.started:
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
            except (PostgresUnavailable, subprocess.TimeoutExpired):
                pass
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
