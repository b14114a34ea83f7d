"""The golden tests the pytest plugin generates, run in a real pytest subprocess (as a user runs them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
samples = pytest.importorskip("harness.samples")

ROOT = Path(__file__).resolve().parents[1]


def test_one_test_per_item_and_artifact(tmp_path: Path) -> None:
    student = samples.write_gguf(tmp_path / "student.gguf", samples.gguf_model.TINY, seed=0)
    other = samples.write_gguf(tmp_path / "other.gguf", samples.gguf_model.TINY, seed=1)
    onnx = samples.write_onnx(tmp_path / "model.onnx", samples.onnx_model.TINY, seed=0)
    lines = (ROOT / "golden" / "example.jsonl").read_text(encoding="utf-8").splitlines()
    suite = tmp_path / "mini.jsonl"
    suite.write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")  # header + 5 items
    ids = [json.loads(line)["id"] for line in lines[1:6]]
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "EDGEFARM_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-q",
         "--device", "local", "--artifact", str(student), "--artifact", str(other), "--artifact", str(onnx),
         "--golden", str(suite), "--edgefarm-only", "--edgefarm-out", str(tmp_path / "out"),
         "-k", "golden", "--junitxml", str(junit)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr  # the other model's tests fail
    # JUnit splits a node id into classname + name; the artifact is in the recorded properties.
    cases: dict[tuple[str, str], ET.Element] = {}
    for c in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in c.iter("property")}
        art = props.get("artifact") or str(c.get("classname")).removeprefix("edgefarm.golden.")
        cases[(str(art), str(c.get("name")).split("@")[0])] = c

    def outcome(art: str, name: str) -> str:
        c = cases[(art, name)]
        return "failed" if c.find("failure") is not None else "skipped" if c.find("skipped") is not None else "passed"

    for i in ids:
        assert outcome("student.gguf", i) == "passed"
        assert outcome("other.gguf", i) == "failed"
    assert outcome("student.gguf", "suite") == "passed"
    assert outcome("other.gguf", "suite") == "failed"
    assert outcome("model.onnx", "suite") == "skipped"  # a text suite says it does not fit an ONNX model
    fail = cases[("other.gguf", ids[0])].find("failure")
    assert fail is not None and "similarity" in (fail.get("message") or "")
    props = {p.get("name"): p.get("value") for p in cases[("student.gguf", "suite")].iter("property")}
    assert props["pass_rate"] == "1.0000" and props["artifact_sha256"]
    saved = json.loads((tmp_path / "out" / "golden" / "student.gguf.json").read_text())
    assert saved["outcome"] == "pass" and saved["passed"] == 5
