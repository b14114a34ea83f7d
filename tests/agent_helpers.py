"""Helpers for the agent tests: run agents/agent.py as a controller would, on real sample artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AGENT = Path(__file__).resolve().parent.parent / "agents" / "agent.py"

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
    p = subprocess.run([sys.executable, str(AGENT), *args], capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return AgentRun(p.returncode, events, p.stderr)


def run_spec(artifact: Path, timeout: float = 180, **spec: Any) -> AgentRun:
    """`agent.py run SPEC` with FAST defaults, overridden by keyword arguments."""
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
