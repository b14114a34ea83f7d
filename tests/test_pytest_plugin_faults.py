"""The pytest plugin when things go wrong: a device asked for by name that cannot be used fails the session
(skipping is an explicit option), a signal stops the device's agent and model before the lock is released."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_helpers import cli_env, lock_is_free, manifest, procs_mentioning, result_lines, wait_for

REPO = Path(__file__).resolve().parents[1]


def pixel7_profiles(fast_profiles: Path, tmp_path: Path) -> Path:
    profiles = tmp_path / "profiles"
    shutil.copytree(fast_profiles, profiles)
    shutil.copy(REPO / "device_profiles" / "pixel7.toml", profiles / "pixel7.toml")
    return profiles


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester.runpytest_subprocess(*args, timeout=240)


def test_an_unreachable_device_asked_for_fails_the_session(pytester: pytest.Pytester, fast_profiles: Path,
                                                           tiny_samples: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEFARM_PIXEL7_SERIAL", raising=False)
    profiles = pixel7_profiles(fast_profiles, tmp_path)
    out = tmp_path / "run"
    res = run(pytester, "--edgefarm-profiles", str(profiles), "--device", "local", "--device", "pixel7",
              "--artifact", str(tiny_samples["onnx"]), "--edgefarm-out", str(out), "-v")
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = res.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1 and outcomes.get("passed", 0) == 3 and "skipped" not in outcomes
    res.stdout.fnmatch_lines(["*edgefarm::pixel7::student-transformer.onnx::run FAILED*",
                              "*EDGEFARM_PIXEL7_SERIAL*"])
    recs = {r["device"]["name"]: r for r in result_lines(out)}  # the run stays complete: pixel7 has its cell
    assert recs["local"]["status"] == "ok" and recs["pixel7"]["status"] == "error"


def test_skipping_an_unreachable_device_is_an_explicit_option(pytester: pytest.Pytester, fast_profiles: Path,
                                                              tiny_samples: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEFARM_PIXEL7_SERIAL", raising=False)
    res = run(pytester, "--edgefarm-profiles", str(pixel7_profiles(fast_profiles, tmp_path)), "--device", "pixel7",
              "--artifact", str(tiny_samples["onnx"]), "--edgefarm-out", str(tmp_path / "o"),
              "--edgefarm-skip-unreachable", "-rs")
    assert res.ret == pytest.ExitCode.OK
    assert res.parseoutcomes().get("skipped", 0) >= 1 and "failed" not in res.parseoutcomes()
    res.stdout.fnmatch_lines(["*SKIPPED*EDGEFARM_PIXEL7_SERIAL*"])


def test_an_out_dir_that_holds_a_run_is_refused(pytester: pytest.Pytester, fast_profiles: Path,
                                                tiny_samples: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--edgefarm-profiles", str(fast_profiles), "--device", "local", "--artifact", str(tiny_samples["onnx"]),
            "--edgefarm-out", str(out)]
    assert run(pytester, *args).ret == pytest.ExitCode.OK
    again = run(pytester, *args)
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    again.stderr.fnmatch_lines(["*already holds a run*"])
    assert len(result_lines(out)) == 1


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_agent_and_frees_the_lock(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                     tmp_path: Path, sig: int, code: int) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "local.toml").write_text((fast_profiles / "local.toml").read_text()
                                         .replace("min_s = 0.2", "min_s = 60").replace("max_s = 2.0", "max_s = 120")
                                         .replace("min_runs = 20", "min_runs = 100000000\nmax_runs = 1000000000"))
    out = tmp_path / "run"
    marker = str(tmp_path / "cache")
    env = cli_env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
                             "--rootdir", str(tmp_path), "--edgefarm-profiles", str(profiles), "--device", "local",
                             "--artifact", str(tiny_samples["onnx"]), "--edgefarm-out", str(out), "--edgefarm-only"],
                            cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for("the model process", lambda: any(" _child " in c for _, c in procs_mentioning(marker)), 120)
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, output
    wait_for("no agent or model process left", lambda: not procs_mentioning(marker), 5)
    assert lock_is_free(Path(env["EDGEFARM_LOCK_DIR"]), "local")
    recs = result_lines(out)
    assert [(r["status"], signal.Signals(sig).name in r["message"]) for r in recs] == [("error", True)], recs
    m = manifest(out)
    assert m["interrupted"] == signal.Signals(sig).name and m["exit_code"] == code
    assert os.path.exists(out / "run.json")
