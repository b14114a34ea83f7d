"""A real Prometheus server on loopback, for tests, benchmarks and trying the contract locally.

Starts Debian's `prometheus` binary with its own data directory and scrape config, optionally after
backfilling OpenMetrics text with `promtool tsdb create-blocks-from openmetrics` (real series at given
timestamps). Readiness is polled on /-/ready with a deadline, never assumed after a sleep.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from harness.errors import UserError

INSTALL_HINT = "apt-get install prometheus (Debian's package ships prometheus and promtool)"


def binaries() -> tuple[str, str] | None:
    """(prometheus, promtool) paths, or None where they are not installed."""
    p, t = shutil.which("prometheus"), shutil.which("promtool")
    return (p, t) if p and t else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backfill(openmetrics_file: Path, data_dir: Path, timeout_s: float = 600.0) -> None:
    """Write TSDB blocks from an OpenMetrics file. Blocks up to 486 h (~20 days) each: promtool re-reads the
    input once per block, so its default of 2 h blocks makes a month take minutes instead of seconds."""
    bins = binaries()
    if bins is None:
        raise UserError("promtool is not installed", hint=INSTALL_HINT)
    argv = [bins[1], "tsdb", "create-blocks-from", "openmetrics", "-q", "--max-block-duration=744h",
            str(openmetrics_file), str(data_dir)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise UserError(f"backfill failed: command {argv!r} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")


class PrometheusServer:
    """`with PrometheusServer(dir, scrape_targets=[...]) as prom: prom.url`"""

    def __init__(self, workdir: Path, *, scrape_targets: list[str] | None = None, scrape_interval_s: float = 1.0,
                 port: int | None = None) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.targets = scrape_targets or []
        self.interval = scrape_interval_s
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        iv = f"{max(1, round(self.interval * 1000))}ms"  # Prometheus durations take no fractions
        lines = ["global:", f"  scrape_interval: {iv}", f"  evaluation_interval: {iv}",
                 "scrape_configs:"]
        if self.targets:
            lines += ["  - job_name: field", f"    scrape_interval: {iv}", "    static_configs:",
                      "      - targets: [" + ", ".join(f"'{t}'" for t in self.targets) + "]"]
        else:
            lines[-1] = "scrape_configs: []"
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 60.0) -> None:
        bins = binaries()
        if bins is None:
            raise UserError("prometheus is not installed", hint=INSTALL_HINT)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(self.config())
        argv = [bins[0], f"--config.file={cfg}", f"--storage.tsdb.path={self.data_dir}",
                "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle"]
        log = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.workdir / "prometheus.log").read_text(errors="replace")[-800:]
                raise UserError(f"prometheus exited {self.proc.returncode} at start: {tail}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise UserError(f"prometheus did not become ready on {self.url} within {timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
