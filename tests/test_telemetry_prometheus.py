"""Contract v1 through a real Prometheus (Debian's package) on loopback: the reference exporter scraped live,
and a month of series backfilled with promtool at simulated timestamps, read back over the HTTP API."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.telemetry import contract as c
from harness.telemetry import openmetrics, traffic
from harness.telemetry.estimates import histogram_quantile
from harness.telemetry.promserver import PrometheusServer, backfill, binaries
from harness.telemetry.promql import fetch_windows

pytestmark = pytest.mark.skipif(binaries() is None, reason="prometheus/promtool not installed "
                                "(apt-get install prometheus; ci/setup.sh --test does this)")
SHA_A, SHA_B = "a" * 64, "b" * 64
DAY = 86400.0


def instant(url: str, q: str, t: float | None = None) -> list[dict[str, Any]]:
    params = {"query": q} | ({"time": f"{t:.3f}"} if t is not None else {})
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_reference_exporter_scraped_live(tmp_path: Path) -> None:
    from harness.telemetry.exporter import FieldMetrics

    m7 = FieldMetrics(model_version="1.0.0", model_sha256=SHA_A, device_class="pixel7")
    low = FieldMetrics(model_version="1.0.0", model_sha256=SHA_A, device_class="low-ram", registry=m7.registry)
    server = m7.serve()
    target = f"127.0.0.1:{server.server_port}"
    try:
        with PrometheusServer(tmp_path, scrape_targets=[target], scrape_interval_s=0.5) as prom:
            # Counters exist at zero before traffic, so increase() starts from a scraped zero.
            wait_for(lambda: len(instant(prom.url, c.REQUESTS)) == 6, 30, "the first scrape")
            sent = {"pixel7": [0, 0], "low-ram": [0, 0]}  # [requests, ooms]
            spec = traffic.TrafficSpec("1.0.0", SHA_A, "pixel7", requests_per_h=3.6e6, oom_rate=0.02)
            for sl in traffic.slices(spec, 50400.0, 50402.0, 1.0, seed=3):  # 14:00, the peak hour
                for i, r in enumerate(traffic.records(spec, sl)):
                    dc = "pixel7" if i % 3 else "low-ram"
                    (m7 if dc == "pixel7" else low).observe_record(r)
                    sent[dc][0] += 1
                    sent[dc][1] += r.outcome == "oom"
            total = sum(v[0] for v in sent.values())
            assert total > 1000

            def scraped() -> float:
                return sum(float(x["value"][1]) for x in instant(prom.url, f"sum({c.REQUESTS})"))
            wait_for(lambda: scraped() == total, 30, f"Prometheus to scrape all {total} requests")
            for dc, (n, ooms) in sent.items():
                got = instant(prom.url, f'sum by (outcome) ({c.REQUESTS}{{device_class="{dc}"}})')
                by = {x["metric"]["outcome"]: float(x["value"][1]) for x in got}
                assert by["ok"] + by["oom"] + by["error"] == n and by["oom"] == ooms
            # Windows over the API: the OOM share and the p95 point agree with Prometheus' own figures
            # (increase() extrapolates every series of a window alike, so ratios and quantiles are exact).
            t_now = time.time()
            windows = fetch_windows(prom.url, SHA_A, t_now - 60, t_now + 20, 20.0)
            assert {w.device_class for w in windows} == {"pixel7", "low-ram"}
            w = max((w for w in windows if w.device_class == "pixel7"), key=lambda w: w.total_requests)
            q = (f'histogram_quantile(0.95, sum by (le) (increase({c.LATENCY}_bucket{{device_class="pixel7"}}'
                 f'[20s])))')
            theirs = float(instant(prom.url, q, w.end)[0]["value"][1])
            ours = histogram_quantile(c.LATENCY_BUCKETS_S, w.latency_counts, 0.95, 0.95).value
            assert ours is not None and math.isclose(ours, theirs, rel_tol=1e-3), (ours, theirs)
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """30 days of two models on two device classes, backfilled; model B's low-ram p95 steps up 15% on day 29."""
    d = tmp_path_factory.mktemp("prom_month")
    end = math.floor(time.time() / DAY) * DAY - DAY  # whole days, all in the past
    start = end - 30 * DAY
    specs = [traffic.TrafficSpec("1.0.0", SHA_A, "pixel7"),
             traffic.TrafficSpec("1.0.0", SHA_A, "low-ram", latency_median_s=0.4),
             traffic.TrafficSpec("2.0.0", SHA_B, "pixel7"),
             traffic.TrafficSpec("2.0.0", SHA_B, "low-ram", latency_median_s=0.4,
                                 steps=(traffic.Step(end - DAY, latency_factor=1.15),))]
    with open(d / "month.om", "w") as fh:
        openmetrics.write(fh, [openmetrics.simulate(s, start, end, 1800.0, seed=i) for i, s in enumerate(specs)])
    backfill(d / "month.om", d / "data")
    prom = PrometheusServer(d)
    prom.start()
    yield prom, start, end
    prom.stop()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_backfilled_month_reads_back(month: Any) -> None:
    prom, start, end = month
    windows = fetch_windows(prom.url, SHA_A, start, end, 6 * 3600)
    per_class = {dc: [w for w in windows if w.device_class == dc] for dc in ("pixel7", "low-ram")}
    assert {k: len(v) for k, v in per_class.items()} == {"pixel7": 120, "low-ram": 120}
    # Day/night: the windows holding the peak hour carry several times the trough's requests.
    counts = sorted(w.total_requests for w in per_class["pixel7"])
    assert counts[-1] > 2.5 * counts[0]
    by_version = fetch_windows(prom.url, "2.0.0", start, end, 6 * 3600)
    assert {w.model for w in by_version} == {SHA_B}


def test_cli_drift_flags_the_latency_step_not_the_steady_model(month: Any, tmp_path: Path) -> None:
    prom, _start, end = month
    at = c.rfc3339(end)
    ok = run_cli("drift", "--policy", str(Path(c.__file__).with_name("drift_policy.toml")), "--model", SHA_A,
                 "--prometheus", prom.url, "--at", at, "--out", str(tmp_path / "a"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rep = json.loads((tmp_path / "a" / "drift.json").read_text())
    assert rep["verdict"] == "ok" and {f["device_class"] for f in rep["findings"]} == {"pixel7", "low-ram"}
    bad = run_cli("drift", "--policy", str(Path(c.__file__).with_name("drift_policy.toml")), "--model", "2.0.0",
                  "--prometheus", prom.url, "--at", at, "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    rep = json.loads((tmp_path / "b" / "drift.json").read_text())
    flagged = {(f["device_class"], f["metric"]) for f in rep["findings"] if f["verdict"] != "ok"}
    assert ("low-ram", "latency_p95") in flagged and not any(dc == "pixel7" for dc, _ in flagged)
    p95 = next(f for f in rep["findings"] if f["metric"] == "latency_p95" and f["device_class"] == "low-ram"
               and f["against"] == "field")
    assert "latency.drift_ratio" in p95["policy_keys"] and p95["baseline"]["windows"] == 7
    assert "DRIFT" in (tmp_path / "b" / "drift.md").read_text()


def test_cli_telemetry_imports_from_prometheus_and_drift_reads_the_store(month: Any, tmp_path: Path) -> None:
    prom, start, end = month
    r = run_cli("telemetry", "--prometheus", prom.url, "--model", SHA_B, "--since", c.rfc3339(start),
                "--until", c.rfc3339(end), "--out", str(tmp_path / "store"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "imported 240 windows" in r.stdout
    again = run_cli("telemetry", "--prometheus", prom.url, "--model", SHA_B, "--since", c.rfc3339(start),
                    "--until", c.rfc3339(end), "--out", str(tmp_path / "store"), cwd=tmp_path)
    assert again.returncode == 0
    stored = json.loads((tmp_path / "store" / "telemetry.json").read_text())
    assert len(stored["windows"]) == 240  # a re-import replaces, never doubles
    d = run_cli("drift", "--policy", str(Path(c.__file__).with_name("drift_policy.toml")), "--model", SHA_B,
                "--store", str(tmp_path / "store"), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert d.returncode == 1 and "latency_p95" in d.stdout


def test_unreachable_prometheus_is_exit_3(tmp_path: Path) -> None:
    from harness.telemetry.promserver import free_port

    r = run_cli("drift", "--policy", str(Path(c.__file__).with_name("drift_policy.toml")), "--model", SHA_A,
                "--prometheus", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 3 and "could not be read" in r.stderr and "Traceback" not in r.stderr


def test_grafana_dashboard_queries_run_on_prometheus(month: Any) -> None:
    prom, _start, end = month
    dash = json.loads(Path(c.__file__).with_name("grafana_dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 6
    answered = 0
    for e in exprs:
        q = e.replace("$model_version", ".*").replace("$device_class", ".*").replace("$__rate_interval", "1h")
        answered += bool(instant(prom.url, q, end - 3600))  # a PromQL syntax error fails inside instant()
    assert answered >= 5  # memory warnings are never sent by the simulated fleet: that panel may be empty


def test_exporter_refuses_unbounded_labels() -> None:
    from harness.errors import UserError
    from harness.telemetry.exporter import FieldMetrics

    with pytest.raises(UserError, match="device_class"):
        FieldMetrics(model_version="1.0", model_sha256=SHA_A, device_class="Alice's phone #42")
    with pytest.raises(UserError, match="model_sha256"):
        FieldMetrics(model_version="1.0", model_sha256="abc", device_class="pixel7")


def test_a_model_prometheus_never_saw_is_a_usage_error(month: Any, tmp_path: Path) -> None:
    prom, _start, end = month
    r = run_cli("drift", "--policy", str(Path(c.__file__).with_name("drift_policy.toml")), "--model", "9.9.9",
                "--prometheus", prom.url, "--at", c.rfc3339(end), "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "no contract series for --model '9.9.9'" in r.stderr
