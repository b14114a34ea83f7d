"""The agent on the wire: one reproducible zip, content-addressed, unpacked atomically once, run with `-m agents`;
and what the device loads is what was asked (artifact sha256 checked before load)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from agent_helpers import PY38, PY38_MISSING

from harness import deploy
from harness.artifacts import inspect
from harness.profiles import load_profile
from harness.runner import DeviceSession, RunOverrides

ROOT = Path(__file__).resolve().parent.parent


def _copy_package(dst: Path) -> Path:
    pkg = dst / "agents"
    shutil.copytree(ROOT / "agents", pkg, ignore=shutil.ignore_patterns("__pycache__", "native"))
    return pkg


def test_the_zip_depends_on_content_only(tmp_path: Path) -> None:
    data = deploy.agent_zip_bytes()
    assert data == deploy.agent_zip_bytes()
    with zipfile.ZipFile(deploy.agent_archive()) as z:
        names = z.namelist()
        assert names == sorted(names) and "agents/__main__.py" in names and "agents/backends/gguf.py" in names
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())
        assert not [n for n in names if "__pycache__" in n or not n.endswith(".py")]
    pkg = _copy_package(tmp_path / "a")
    for f in pkg.rglob("*.py"):  # new timestamps, same bytes: same archive
        os.utime(f, (1_000_000_000, 1_000_000_000))
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    assert deploy.agent_zip_bytes(pkg) == data
    (pkg / "spec.py").write_text((pkg / "spec.py").read_text() + "\n# changed\n")
    assert hashlib.sha256(deploy.agent_zip_bytes(pkg)).digest() != hashlib.sha256(data).digest()


def _unpack(python: str, zip_path: Path, dest: Path, sha: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-c", deploy._UNPACK_SNIPPET, str(zip_path), str(dest), sha],
                          capture_output=True, text=True, timeout=120)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("python", [sys.executable, pytest.param(PY38, marks=pytest.mark.skipif(
    PY38 is None, reason=PY38_MISSING))], ids=["this-python", "python3.8"])
def test_unpack_is_atomic_verified_and_byte_compiled(tmp_path: Path, python: str | None) -> None:
    assert python is not None
    src = deploy.agent_archive()
    sha = src.stem
    zip_path = tmp_path / f"{sha}.agent.zip"
    shutil.copy(src, zip_path)
    dest = tmp_path / f"agent-{sha}"
    # a half-unpacked directory left by a killed unpack: never trusted, removed by the next unpack
    stale = tmp_path / f"agent-{sha}.tmp.{_dead_pid()}"
    (stale / "agents").mkdir(parents=True)
    (stale / "agents" / "__main__.py").write_text("raise SystemExit('half an agent')\n")
    # a corrupted archive is refused and leaves nothing behind
    bad = tmp_path / "bad.zip"
    bad.write_bytes(src.read_bytes()[:-10] + b"0123456789")
    r = _unpack(python, bad, dest, sha)
    assert r.returncode == 3 and f"expected {sha}" in r.stderr and not dest.exists()
    r = _unpack(python, zip_path, dest, sha)
    assert r.returncode == 0 and r.stdout.strip() == "ready", r.stderr
    assert not stale.exists() and not list(tmp_path.glob("agent-*.tmp.*"))
    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True,
                         text=True, check=True).stdout.strip()
    modules = sorted(p.relative_to(dest) for p in dest.rglob("*.py"))
    assert modules and all((dest / m.parent / "__pycache__" / f"{m.stem}.{tag}.pyc").exists() for m in modules)
    env = {**os.environ, "PYTHONPATH": str(dest)}
    probe = subprocess.run([python, "-m", "agents", "probe"], capture_output=True, text=True, timeout=60, env=env)
    assert json.loads(probe.stdout)["event"] == "probe", probe.stderr
    assert _unpack(python, zip_path, dest, sha).stdout.strip() == "ready"  # once: a second call finds it


def test_session_stages_the_zip_once_and_runs_the_package(fast_profiles: Path, tmp_path: Path) -> None:
    prof = load_profile(fast_profiles / "local.toml")
    prof.transport.workdir = str(tmp_path / "device")
    s1 = DeviceSession(prof)
    try:
        assert s1.agent.remote == str(tmp_path / "device" / f"agent-{s1.agent.sha256}")
        assert (Path(s1.agent.remote) / "agents" / "__main__.py").is_file()
        assert s1.fingerprint["event"] == "probe" and s1.agent.stats.bytes_sent > 0
        argv = deploy.agent_argv("python3", s1.agent.remote, "run", "{}")
        assert argv[:2] == ["env", f"PYTHONPATH={s1.agent.remote}"] and argv[-4:] == ["-m", "agents", "run", "{}"]
    finally:
        s1.close()
    s2 = DeviceSession(prof)
    try:
        assert s2.agent.sha256 == s1.agent.sha256 and s2.agent.stats.bytes_sent == 0
    finally:
        s2.close()


def test_a_staged_artifact_changed_on_the_device_is_not_measured(fast_profiles: Path, tmp_path: Path,
                                                                  tiny_samples: dict[str, Path]) -> None:
    prof = load_profile(fast_profiles / "local.toml")
    prof.transport.workdir = str(tmp_path / "device")
    art = inspect(tiny_samples["gguf"])
    session = DeviceSession(prof)
    try:
        rec = session.run_artifact(art, "r1", RunOverrides(min_s=0.0))
        assert rec.status == "ok", rec.message
        assert rec.provenance.artifact_sha256_loaded == art.sha256
        assert rec.workload["artifact_sha256"] == art.sha256 and rec.workload["confidence"] == 0.95
        assert rec.workload["reset_hwm"] is True and rec.workload["gguf"]["n_ctx"] == 512
        assert (rec.provenance.input_shapes or {})["prompt_tokens"] == [16]
        assert rec.provenance.push is not None
        staged = Path(rec.provenance.push.remote_path)
        size = staged.stat().st_size
        with open(staged, "r+b") as fh:  # 4 KB in the middle: same size, so staging does not re-send it
            fh.seek(size // 2)
            fh.write(os.urandom(4096))
        tampered = hashlib.sha256(staged.read_bytes()).hexdigest()
        rec = session.run_artifact(art, "r2", RunOverrides(min_s=0.0))
    finally:
        session.close()
    assert rec.provenance.push is not None and rec.provenance.push.skipped is True
    assert rec.status == "error" and "sha256 mismatch" in rec.message
    assert art.sha256 in rec.message and tampered in rec.message
    assert not rec.metrics and not rec.samples


def test_dynamic_dims_or_inputs_the_model_lacks_are_named(tiny_samples: dict[str, Path]) -> None:
    from agent_helpers import run_spec

    res = run_spec(tiny_samples["onnx"], dynamic_dims={"seq": 8, "sequence": 8}, min_runs=5, min_s=0.0).result
    assert res["status"] == "error"
    assert "dynamic_dims: 'sequence' not in this model; it has: " in res["message"] and "seq" in res["message"]
    res = run_spec(tiny_samples["tflite"], input_shapes={"pixels": [1, 4]}, min_runs=5, min_s=0.0).result
    assert res["status"] == "error" and "input_shapes: 'pixels' not in this model; it has: " in res["message"]


def test_the_model_process_imports_only_what_it_needs() -> None:
    """What `python -m agents _child` imports before the runtime: no supervisor, fingerprint, statistics
    summary, subprocess or OpenSSL (hashlib) - their memory would be counted in the model's figures."""
    code = ("import json, sys\n"
            "import agents.child, agents.backends.tflite\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mods = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                         check=True).stdout))
    assert {"agents.child", "agents.spec", "agents.loops", "agents.stats", "agents.procfs"} <= mods
    assert not mods & {"agents.supervisor", "agents.fingerprint", "agents.summary", "agents.backends.onnx",
                       "agents.backends.gguf", "subprocess", "hashlib", "_hashlib", "numpy"}
    from agents.child import file_sha256

    path = ROOT / "agents" / "child.py"
    assert file_sha256(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_waiting_agent_imports_only_what_it_needs() -> None:
    """What `python -m agents run` holds while it waits on the model process: the supervisor, without typing,
    tempfile (and its random, shutil), the statistics or the fingerprint - ~1.7 MiB of resident memory on a
    device that the model cannot use (benchmarks/agent_overhead.py)."""
    code = ("import json, sys\n"
            "import agents.__main__, agents.supervisor, agents.procfs, agents.formats\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mods = set(json.loads(subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                                         env=env, check=True).stdout))
    assert {"agents.supervisor", "agents.spec", "agents.result", "agents.contention", "subprocess"} <= mods
    assert not mods & {"typing", "tempfile", "random", "shutil", "agents.summary", "agents.stats",
                       "agents.fingerprint", "agents.child", "agents.loops"}
