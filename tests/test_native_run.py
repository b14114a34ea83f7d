"""The native flavour end to end with the real llama-bench: through the real adb server and the adbd stand-in
and through a real sshd, on "devices" whose shell finds no Python (any attempt is recorded and fails the
test), through the pytest plugin, and against the Python agent's record on the same phone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from native_helpers import llama_tools, no_python_path
from remote_fixtures import adb_profile, adb_server, local_profile, ssh_profile  # noqa: F401  (fixtures)

from harness.records import Record, load_run
from harness.standins import adbd, sshd

RUN = {"gguf_prompt_tokens": 16, "gguf_new_tokens": 16, "gguf_repetitions": 8}
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "harness" / "schemas" / "result.schema.json").read_text())


def make_native(profile: Path, bin_dir: Path, *, agent: str = "native", python: str = "python3",
                native: dict[str, Any] | None = None) -> Path:
    """Turn a stand-in profile into a native-flavour one (what a user writes for a stock phone)."""
    text = profile.read_text()
    lines = text.splitlines()
    lines.insert(1, f'agent = "{agent}"')
    lines = [f'python = "{python}"' if ln.startswith("python = ") else ln for ln in lines]
    cfg = {"llama_bench": str(bin_dir / "llama-bench"), "libs": [str(bin_dir)], **(native or {})}
    lines += ["", "[native]"] + [f"{k} = {json.dumps(v)}" for k, v in cfg.items()]
    profile.write_text("\n".join(lines) + "\n")
    return profile


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def one_record(out: Path) -> Record:
    recs = load_run(out)
    assert len(recs) == 1, recs
    return recs[0]


def shape(rec: Record) -> dict[str, Any]:
    d = rec.to_dict()
    return {"record": sorted(d), "metrics": sorted(rec.metrics),
            "metric_fields": sorted({k for m in d["metrics"].values() for k in m}),
            "samples": sorted(rec.samples), "runtime": sorted(k for k in ("name", "version", "threads")
                                                                if k in rec.runtime)}


@pytest.fixture(scope="module")
def tools() -> Path:
    return llama_tools("host")


@pytest.fixture(scope="module")
def bare_phone(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An adbd stand-in whose shell commands find no Python (traps record any attempt)."""
    tmp = tmp_path_factory.mktemp("bare-phone")
    path, marker = no_python_path(tmp)
    mp = pytest.MonkeyPatch()
    mp.setenv("PATH", path)  # inherited by the adbd process, and so by every shell command it runs
    try:
        dev = adbd.start(tmp / "storage")
    finally:
        mp.undo()
    yield dev, marker
    dev.stop()


def test_pytest_plugin_on_a_stock_phone_matches_the_python_agents_record(
        pytester: pytest.Pytester, adb_server: adbd.AdbServer, bare_phone: Any, tools: Path,  # noqa: F811
        tiny_samples: dict[str, Path], tmp_path: Path) -> None:
    dev, marker = bare_phone
    profiles = tmp_path / "profiles"
    make_native(adb_profile(profiles, "stockphone", adb_server, dev, **RUN), tools)
    (profiles / "stockphone.toml").write_text((profiles / "stockphone.toml").read_text()
                                              + "\n[budgets]\npeak_rss_mib = 2048\ndecode_tokens_per_s = 1\n")
    gguf = str(tiny_samples["gguf"])
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--edgefarm-profiles", str(profiles), "--device",
                                        "stockphone", "--artifact", gguf, "--edgefarm-out", str(tmp_path / "out"),
                                        "--backend", "gpu", "-v", timeout=600)
    res.assert_outcomes(passed=3)  # run + 2 budgets
    assert not marker.exists(), "something tried to run Python on the device: " + marker.read_text()
    native = one_record(tmp_path / "out")
    assert native.status == "ok", native.message
    assert native.runtime["name"] == "llama-bench" and native.runtime["threads"] >= 1
    assert native.device.fingerprint.get("agent_flavour") == "native"
    assert native.device.fingerprint.get("os") == "Android"  # getprop answered: the stand-in is a phone
    for name in ("prefill_tokens_per_s", "decode_tokens_per_s"):
        m = native.metrics[name]
        assert m.value is not None and m.value > 0 and m.n == 8 and m.ci is not None and m.ci[0] < m.value < m.ci[1]
        assert len(native.samples[name]) == 8
    assert "derived" in (native.metrics["ttft_ms"].note or "")
    peak = native.metrics["peak_rss_mib"]
    assert peak.value is not None and peak.value > tiny_samples["gguf"].stat().st_size / 2**20
    assert "VmHWM" in (peak.note or "")
    # The same phone with Python reachable (the Python agent): the record has the same shape.
    py_profiles = tmp_path / "py-profiles"
    adb_profile(py_profiles, "termuxphone", adb_server, adbd_with_python := adbd.start(tmp_path / "py-storage"), **RUN)
    try:
        r = cli("run", "--profiles", str(py_profiles), "--device", "termuxphone", "--artifact", gguf,
                "--backend", "gpu", "--out", str(tmp_path / "py-out"), "-q")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        adbd_with_python.stop()
    python = one_record(tmp_path / "py-out")
    assert python.status == "ok"
    assert shape(native) == shape(python)
    assert python.workload["gguf"] == native.workload["gguf"]
    for rec in (native, python):  # --backend reached both flavours; what ran is said, and the threads used
        jsonschema.validate(rec.to_dict(), SCHEMA)
        rt = rec.runtime
        assert rec.workload["backend"] == "gpu" and rt["backend_requested"] == "gpu", rt
        assert rt["backend"] == "cpu" and "CPU" in rt["backend_note"] and rt["n_gpu_layers"] is not None, rt
        assert isinstance(rt["threads"], int) and rt["threads"] >= 1, rt
        assert rt["flash_attn"] == "off", rt  # the same llama.cpp kernels on both flavours
    assert "@ d16" in (native.metrics["decode_tokens_per_s"].note or "")  # decoded after the prompt, as Python does


def test_the_no_python_trap_fires(adb_server: adbd.AdbServer, bare_phone: Any, tools: Path,  # noqa: F811
                                  tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    """The control for the test above: the Python flavour on the same bare phone tries `python3`, which the
    trap records (so a native run that left no record really started no Python)."""
    dev, marker = bare_phone
    before = marker.read_text() if marker.exists() else ""
    profiles = tmp_path / "profiles"
    make_native(adb_profile(profiles, "pyphone", adb_server, dev, **RUN), tools, agent="python")
    r = cli("run", "--profiles", str(profiles), "--device", "pyphone", "--artifact", str(tiny_samples["gguf"]),
            "--out", str(tmp_path / "out"), "-q")
    assert r.returncode != 0
    assert marker.exists() and len(marker.read_text()) > len(before), r.stdout + r.stderr
    marker.unlink()  # the module's other tests assert that nothing else tried


def test_ssh_board_without_python_auto_picks_native(tmp_path: Path, tools: Path,
                                                     tiny_samples: dict[str, Path]) -> None:
    path, marker = no_python_path(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    board = sshd.start(tmp_path / "board", extra_config=f"SetEnv PATH={path} HOME={home}\n")
    try:
        profiles = tmp_path / "profiles"  # "auto": the transport finds no such interpreter, so native
        make_native(ssh_profile(profiles, "bareboard", board, **RUN), tools, agent="auto",
                    python="/opt/no-python-here/python3")
        r = cli("run", "--profiles", str(profiles), "--device", "bareboard", "--artifact", str(tiny_samples["gguf"]),
                "--out", str(tmp_path / "out"), "-q")
        assert r.returncode == 0, r.stdout + r.stderr
        d = cli("devices", "--profiles", str(profiles))
        assert "native agent" in d.stdout and "llama-bench ok" in d.stdout, d.stdout
        assert "benchmark_model [experimental] not configured" in d.stdout
    finally:
        board.stop()
    assert not marker.exists(), marker.read_text()
    rec = one_record(tmp_path / "out")
    assert rec.status == "ok" and rec.runtime["name"] == "llama-bench"
    assert rec.provenance.push is not None and rec.provenance.push.bytes_sent > 0


def test_faults_have_statuses(tmp_path: Path, tools: Path, tiny_samples: dict[str, Path]) -> None:
    profiles = tmp_path / "profiles"
    make_native(local_profile(profiles, "auto", tmp_path / "w", **RUN), tools)
    # a hung tool is killed at timeout_s; a truncated model is an error that says why
    r = cli("run", "--profiles", str(profiles), "--device", "auto", "--artifact", str(tiny_samples["gguf"]),
            "--timeout", "1.5", "--spec-json", json.dumps({"gguf": {"prompt_tokens": 16, "new_tokens": 8,
                                                                   "repetitions": 100000}}),
            "--out", str(tmp_path / "slow"), "-q")
    assert r.returncode == 4
    assert one_record(tmp_path / "slow").status == "timeout"
    # a vocabulary with one token twice: llama.cpp aborts the whole process (FACTS.md) - `crashed`, and why
    data = bytearray(tiny_samples["gguf"].read_bytes())
    at = data.find(b"<0x01>")
    data[at:at + 6] = b"<0x00>"
    bad = tmp_path / "duplicate-token.gguf"
    bad.write_bytes(bytes(data))
    r = cli("run", "--profiles", str(profiles), "--device", "auto", "--artifact", str(bad), "--out",
            str(tmp_path / "bad"), "-q")
    rec = one_record(tmp_path / "bad")
    assert r.returncode == 4 and rec.status == "crashed" and rec.signal == 6, (rec.status, rec.message)
    assert rec.message and "SIGABRT" in rec.message and "vocab" in rec.message.lower(), rec.message


def test_missing_tool_says_how_to_build_it(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    profiles = tmp_path / "profiles"
    p = local_profile(profiles, "bare", tmp_path / "w", **RUN)
    lines = p.read_text().splitlines()
    lines.insert(1, 'agent = "native"')
    p.write_text("\n".join(lines) + "\n")
    r = cli("run", "--profiles", str(profiles), "--device", "bare", "--artifact", str(tiny_samples["gguf"]),
            "--out", str(tmp_path / "out"), "-q")
    rec = one_record(tmp_path / "out")
    assert r.returncode != 0 and rec.status == "error"
    assert "[native] llama_bench" in (rec.message or "") and "build_llama_tools.sh" in (rec.message or "")
    d = cli("devices", "--profiles", str(profiles))
    assert "NOT READY" in d.stdout and "[native] llama_bench" in d.stdout, d.stdout
