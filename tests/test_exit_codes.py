"""Every exit code README.md documents (harness/errors.py defines them), produced by the real `edgefarm` command.

0 pass, 1 gate fail, 2 usage / configuration, 3 a planned cell with no record (the gate), 4 a run not ok,
70 an internal error with its traceback, 130 SIGINT, 143 SIGTERM. `run`'s own 3 (an unreachable device) is
tested with the run path (tests/test_local_run.py and the remote farm tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_helpers import EDGEFARM, FIXTURE_POLICY, FIXTURE_RESULTS, children, cli, gate_fixture

from harness import errors

RESULTS, POLICY = FIXTURE_RESULTS, FIXTURE_POLICY
gate = gate_fixture


def test_the_codes_are_the_documented_ones() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code in (errors.EXIT_OK, errors.EXIT_GATE_FAILED, errors.EXIT_USAGE, errors.EXIT_DEVICE,
                 errors.EXIT_RUNS_NOT_OK, errors.EXIT_INTERNAL, errors.EXIT_SIGINT, errors.EXIT_SIGTERM):
        assert f"`{code}`" in readme, code


def test_gate_0_1_2_3(tmp_path: Path) -> None:
    assert gate(RESULTS / "candidate_same", "--baseline", str(RESULTS / "baseline")).returncode == 0
    assert gate(RESULTS / "candidate_slow", "--baseline", str(RESULTS / "baseline")).returncode == 1
    r = gate(tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("edgefarm: error:") and "no results.jsonl" in r.stderr
    d = tmp_path / "run"
    d.mkdir()
    (d / "results.jsonl").write_text("")  # the run planned one cell and wrote nothing
    (d / "run.json").write_text(json.dumps({
        "schema": "edgefarm.run/1", "run_id": "r", "started_at": "2026-11-23T18:00:00Z", "finished_at": None,
        "devices": ["local"], "artifacts": [{"name": "m.onnx", "label": "m.onnx", "path": "/m.onnx",
                                             "sha256": "a" * 64, "size_bytes": 1, "format": "onnx"}],
        "planned": [{"device": "local", "sha256": "a" * 64}], "interrupted": None, "exit_code": None}))
    pol = tmp_path / "p.toml"
    pol.write_text('schema = 1\n[[budget]]\nmetric = "latency_ms_p95"\nmax = 250.0\n')
    r = gate(d, policy=pol)
    assert r.returncode == 3 and "planned in run.json but results.jsonl has no record" in r.stdout


def test_run_4_when_a_run_is_not_ok(tmp_path: Path, fast_profiles: Path, tiny_samples: dict[str, Path]) -> None:
    r = cli("run", "--profiles", str(fast_profiles), "--artifact", str(tiny_samples["tflite"]),
            "--timeout", "0.001", "--out", str(tmp_path / "out"))
    assert r.returncode == 4, r.stderr
    recs = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(recs) == 1 and recs[0]["status"] != "ok"


def test_70_is_a_bug_with_its_traceback(tmp_path: Path) -> None:
    # A command module plugged in the way every command is (COMMAND_MODULES), whose handler has a bug.
    (tmp_path / "buggy_cmd.py").write_text(
        "def register(sub):\n    sub.add_parser('buggy').set_defaults(func=lambda args: {}['missing'])\n")
    code = ("import sys, harness.cli as c; c.COMMAND_MODULES.append('buggy_cmd'); sys.exit(c.main(['buggy']))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 70
    assert "Traceback" in r.stderr and "KeyError: 'missing'" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("edgefarm: internal error (a bug")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_130_and_143_keep_finished_records(tmp_path: Path, fast_profiles: Path,
                                                   tiny_samples: dict[str, Path], sig: int, code: int) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([*EDGEFARM, "run", "--profiles", str(fast_profiles), "--artifact", str(tiny_samples["tflite"]),
                             "--artifact", str(tiny_samples["onnx"]), "--min-s", "20", "--max-s", "30",
                             "--out", str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not children(proc.pid):  # the agent has started: the run is in flight
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    for line in (out / "results.jsonl").read_text().splitlines() if (out / "results.jsonl").exists() else []:
        json.loads(line)  # whatever finished is whole
