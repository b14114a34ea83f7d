"""Helpers for the agent tests: run the agent package (`python -m agents`) as a controller would, on real samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AGENT = [sys.executable, "-m", "agents"]  # argv prefix; run with AGENT_ENV (the package's parent on PYTHONPATH)
AGENT_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}

# Fast run control for tiny models: enough runs for every percentile claim (p99 needs 368 at 95%).
FAST: dict[str, Any] = {"warmup_runs": 2, "warmup_min_s": 0.0, "min_runs": 400, "min_s": 0.2, "max_s": 20.0,
                        "threads": 1, "timeout_s": 120}
FAST_GGUF: dict[str, Any] = {"prompt_tokens": 16, "new_tokens": 75, "repetitions": 6, "n_ctx": 128}


@dataclass
class AgentRun:
    exit_code: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("event") == "result"]
        assert len(results) == 1, f"expected one result line, got {self.events!r}\nstderr: {self.stderr}"
        return results[0]

    def value(self, name: str) -> Any:
        return self.result["metrics"][name]["value"]


def run_agent(*args: str, timeout: float = 180) -> AgentRun:
    """Run the agent with argv; every stdout line must be one JSON object."""
    p = subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=timeout, env=AGENT_ENV)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return AgentRun(p.returncode, events, p.stderr)


def run_spec(artifact: Path, timeout: float = 180, **spec: Any) -> AgentRun:
    """`python -m agents run SPEC` with FAST defaults, overridden by keyword arguments."""
    full: dict[str, Any] = {**FAST, "artifact": str(artifact), **spec}
    if str(artifact).endswith(".gguf"):
        full["gguf"] = {**FAST_GGUF, **spec.get("gguf", {})}
    return run_agent("run", json.dumps(full), timeout=timeout)


def make_samples(out: Path) -> dict[str, Path]:
    """Tiny real artifacts of each format, a duplicated-vocab GGUF, and half-length copies of each."""
    from harness.samples import write_broken_gguf, write_samples, write_truncated

    paths = {p.suffix.lstrip("."): p for p in write_samples(out, "tiny")}
    paths["dupvocab"] = write_broken_gguf(out / "dupvocab.gguf")
    for fmt in ("onnx", "tflite", "gguf"):
        paths["truncated_" + fmt] = write_truncated(paths[fmt], out / f"truncated.{fmt}")
    return paths


def python38() -> str | None:
    """A working Python 3.8, the oldest the agent supports (agents/README.md): $EDGEFARM_PYTHON38, python3.8 on
    PATH, or pyenv's (the CI image has /root/.pyenv/versions/3.8.18)."""
    import glob
    import shutil

    cands = [os.environ.get("EDGEFARM_PYTHON38"), shutil.which("python3.8"), "/usr/bin/python3.8",
             *sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.8.*" / "bin" / "python3")))]
    for c in cands:
        if c and Path(c).exists():
            try:
                ok = subprocess.run([c, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                                    capture_output=True, timeout=30).returncode == 0
            except OSError:
                ok = False
            if ok:
                return c
    return None


PY38 = python38()
PY38_MISSING = ("no Python 3.8 (the agent's oldest supported Python) on this machine: set EDGEFARM_PYTHON38 "
                "or `pyenv install 3.8` to run this test")


def onnx_students(d: Path, *students: tuple[str, int, int]) -> tuple[Path, ...]:
    """Tiny-architecture ONNX students written to d, one per (file name, layers, weight seed)."""
    from dataclasses import replace

    from harness.samples.onnx_model import TINY, write_onnx

    return tuple(write_onnx(d / name, replace(TINY, n_layers=layers), seed=seed) for name, layers, seed in students)
