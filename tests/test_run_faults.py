"""Issue 11, run path: nothing lost, or it says so. Each case drives the real CLI in a subprocess and checks
the exit code, the one-line error and that results.jsonl holds every finished record."""

from __future__ import annotations

import shutil
import signal
import socket
from pathlib import Path

import pytest
from fault_helpers import (
    edgefarm,
    lock_is_free,
    manifest,
    one_line_error,
    procs_mentioning,
    result_lines,
    start,
    wait_for,
)

REPO = Path(__file__).resolve().parents[1]


def test_a_device_that_cannot_be_used_exits_3_and_keeps_the_others(fast_profiles: Path,
                                                                   tiny_samples: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    shutil.copytree(fast_profiles, profiles)
    with socket.socket() as s:  # a port nothing listens on: the board is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (profiles / "board.toml").write_text(
        'schema = 1\nname = "board"\nclass = "board"\nram_mib = 4096\n[transport]\nkind = "ssh"\n'
        f'host = "127.0.0.1"\nport = {port}\nuser = "edgefarm"\nknown_hosts = "{tmp_path / "known_hosts"}"\n'
        'connect_timeout_s = 2.0\n')
    out = tmp_path / "run"
    res = edgefarm(tmp_path, "run", "--profiles", str(profiles), "--device", "local", "--device", "board",
                   "--artifact", str(tiny_samples["tflite"]), "--out", str(out), "-q")
    assert res.returncode == 3, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    assert "device 'board' could not be used" in res.stderr
    recs = {r["device"]["name"]: r for r in result_lines(out)}
    assert recs["local"]["status"] == "ok"
    assert recs["board"]["status"] in ("error", "device_lost") and str(port) in recs["board"]["message"]
    m = manifest(out)
    assert m["exit_code"] == 3 and m["finished_at"] and m["interrupted"] is None
    assert len(m["planned"]) == 2 and {c["device"] for c in m["planned"]} == {"local", "board"}


@pytest.mark.parametrize("flag, value", [("--max-s", "inf"), ("--max-s", "nan"), ("--min-s", "-1"),
                                         ("--timeout", "0"), ("--threads", "0")])
def test_nan_inf_and_negative_run_control_is_a_user_error(tiny_samples: dict[str, Path], tmp_path: Path,
                                                          flag: str, value: str) -> None:
    out = tmp_path / "run"
    res = edgefarm(tmp_path, "run", "--artifact", str(tiny_samples["onnx"]), "--out", str(out), flag, value)
    assert res.returncode == 2
    assert flag in one_line_error(res.stderr)
    assert not out.exists()  # refused before anything ran


@pytest.mark.parametrize("text, expect", [("{bad", "not valid JSON"), ("[1]", "expected a JSON object"),
                                          ('{"max_s": NaN}', "NaN is not a finite number"),
                                          ('{"no_such_key": 1}', "unknown key(s) no_such_key")])
def test_malformed_spec_json_is_a_user_error(tiny_samples: dict[str, Path], tmp_path: Path, text: str,
                                             expect: str) -> None:
    res = edgefarm(tmp_path, "run", "--artifact", str(tiny_samples["onnx"]), "--out", str(tmp_path / "o"),
                   "--spec-json", text)
    assert res.returncode == 2
    assert expect in one_line_error(res.stderr) and "--spec-json" in res.stderr


def test_a_full_disk_under_out_is_one_line_and_exit_2(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.jsonl").symlink_to("/dev/full")  # every write there fails with ENOSPC, as on a full disk
    res = edgefarm(tmp_path, "run", "--profiles", str(fast_profiles), "--artifact", str(tiny_samples["onnx"]),
                   "--artifact", str(tiny_samples["tflite"]), "--out", str(out), "-q")
    assert res.returncode == 2, res.stderr
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("edgefarm: error")]
    assert len(err) == 1 and "results.jsonl" in err[0] and "No space left on device" in err[0], res.stderr
    assert "Traceback" not in res.stderr
    assert manifest(out)["exit_code"] == 2


def test_an_out_that_holds_a_run_is_refused_unless_resumed(fast_profiles: Path, tiny_samples: dict[str, Path],
                                                           tmp_path: Path) -> None:
    out = tmp_path / "run"
    onnx, tflite = str(tiny_samples["onnx"]), str(tiny_samples["tflite"])
    common = ["run", "--profiles", str(fast_profiles), "--out", str(out), "-q"]
    first = edgefarm(tmp_path, *common, "--artifact", onnx, "--artifact", tflite, "--timeout", "0.01")
    assert first.returncode == 4, first.stderr  # the agent cannot finish in 10 ms: both cells not ok
    assert len(result_lines(out)) == 2 and all(r["status"] != "ok" for r in result_lines(out))
    again = edgefarm(tmp_path, *common, "--artifact", onnx)
    assert again.returncode == 2 and "--resume" in one_line_error(again.stderr)
    assert len(result_lines(out)) == 2  # untouched

    resumed = edgefarm(tmp_path, *common, "--artifact", onnx, "--artifact", tflite, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    lines = result_lines(out)
    assert [r["status"] for r in lines[2:]] == ["ok", "ok"]
    run_ids = {r["run_id"] for r in lines}
    assert len(run_ids) == 1  # one run, finished in two attempts
    done = edgefarm(tmp_path, *common, "--artifact", onnx, "--artifact", tflite, "--resume")
    assert done.returncode == 0 and len(result_lines(out)) == 4  # nothing left to re-run
    assert manifest(out)["exit_code"] == 0


def _two_local_devices(fast_profiles: Path, tmp_path: Path) -> Path:
    """`quick` finishes its cells at once; `slow` measures for a minute (long enough to be interrupted)."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (fast_profiles / "local.toml").read_text()
    (profiles / "quick.toml").write_text(text.replace('name = "local"', 'name = "quick"'))
    (profiles / "slow.toml").write_text(text.replace('name = "local"', 'name = "slow"')
                                        .replace("min_s = 0.2", "min_s = 60").replace("max_s = 2.0", "max_s = 120")
                                        .replace("min_runs = 20", "min_runs = 100000000\nmax_runs = 1000000000")
                                        .replace("gguf_repetitions = 2", "gguf_repetitions = 100000"))
    return profiles


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_every_agent_keeps_what_finished_and_frees_the_lock(
        fast_profiles: Path, tiny_samples: dict[str, Path], tmp_path: Path, sig: int, code: int) -> None:
    profiles = _two_local_devices(fast_profiles, tmp_path)
    out = tmp_path / "run"
    marker = str(tmp_path / "cache")  # agent and model argv name files in the device work dir under it
    proc = start(tmp_path, "run", "--profiles", str(profiles), "--device", "quick", "--device", "slow",
                 "--artifact", str(tiny_samples["onnx"]), "--artifact", str(tiny_samples["tflite"]),
                 "--out", str(out), "-q")
    try:
        wait_for("quick's two records", lambda: sum(r["device"]["name"] == "quick" for r in result_lines(out)) == 2,
                 240)
        wait_for("slow's model process", lambda: any(" _child " in c for _, c in procs_mentioning(marker)), 120)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    wait_for("no agent or model process left", lambda: not procs_mentioning(marker), 5)
    assert lock_is_free(tmp_path / "locks", "slow") and lock_is_free(tmp_path / "locks", "quick")
    recs = result_lines(out)
    assert sorted((r["device"]["name"], r["status"]) for r in recs) == [
        ("quick", "ok"), ("quick", "ok"), ("slow", "error"), ("slow", "error")]
    name = signal.Signals(sig).name
    assert all(f"interrupted ({name})" in r["message"] for r in recs if r["device"]["name"] == "slow")
    m = manifest(out)
    assert m["interrupted"] == name and m["exit_code"] == code and m["finished_at"]


def test_run_json_is_the_manifest_with_labels_for_same_named_files(fast_profiles: Path,
                                                                    tiny_samples: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(tiny_samples["onnx"], a / "model.onnx")
    shutil.copy(tiny_samples["tflite"], b / "model.onnx")  # same name, other bytes (a TFLite, named .onnx)
    out = tmp_path / "run"
    res = edgefarm(tmp_path, "run", "--profiles", str(fast_profiles), "--artifact", str(a / "model.onnx"),
                   "--artifact", str(b / "model.onnx"), "--out", str(out), "-q")
    assert res.returncode == 0, res.stderr
    m = manifest(out)
    assert m["schema"] == "edgefarm.run/1" and m["exit_code"] == 0 and m["interrupted"] is None
    assert sorted(x["label"] for x in m["artifacts"]) == ["a/model.onnx", "b/model.onnx"]
    assert len({c["sha256"] for c in m["planned"]}) == 2
    assert {(r["device"]["name"], r["artifact"]["sha256"]) for r in result_lines(out)} == {
        (c["device"], c["sha256"]) for c in m["planned"]}
    assert m["started_at"] <= m["finished_at"]
