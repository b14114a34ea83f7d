"""How the agent turns what happened to its model process into a status and a message."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import AGENT, AGENT_ENV, FAST, make_samples
from fault_helpers import children

from agents.result import AgentResult
from agents.spec import WorkloadSpec
from agents.supervisor import Supervised, fill_result

SPEC: dict[str, Any] = {"artifact": "/x.onnx", "rlimit_as_mib": None, "timeout_s": 10.0, "confidence": 0.95}


def _seen(status: int, child: dict[str, Any] | None = None, tail: str = "", timed_out: bool = False) -> Any:
    sv = Supervised()
    sv.status, sv.child, sv.stderr_tail, sv.timed_out = status, child, tail, timed_out
    sv.rusage = resource.getrusage(resource.RUSAGE_SELF)
    return sv


def _fill(sv: Any, cg_oom: bool = False, **spec: Any) -> dict[str, Any]:
    res = AgentResult(format="onnx")
    fill_result(res, WorkloadSpec.from_dict({**SPEC, **spec}), sv, cg_oom)
    return res.to_event()


def test_sigkill_under_rlimit_is_oom() -> None:
    res = _fill(_seen(signal.SIGKILL), rlimit_as_mib=300)
    assert res["status"] == "oom" and res["signal"] == 9 and "rlimit_as_mib=300" in res["message"]


def test_sigkill_counted_by_the_memory_cgroup_is_oom() -> None:
    res = _fill(_seen(signal.SIGKILL), cg_oom=True)
    assert res["status"] == "oom" and "cgroup" in res["message"]


def test_sigkill_without_a_cap_is_a_crash() -> None:
    res = _fill(_seen(signal.SIGKILL))
    assert res["status"] == "crashed" and res["signal"] == 9 and "SIGKILL" in res["message"]


def test_abort_after_bad_alloc_is_oom() -> None:
    tail = "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n"
    res = _fill(_seen(signal.SIGABRT, tail=tail))
    assert res["status"] == "oom" and res["signal"] == 6 and "bad_alloc" in res["message"]


def test_runtime_error_saying_failed_to_allocate_is_oom() -> None:
    child = {"status": "error", "message": "RuntimeException: Failed to allocate memory for tensor"}
    res = _fill(_seen(0, child=child))
    assert res["status"] == "oom" and "Failed to allocate" in res["message"]


def test_plain_runtime_error_stays_error() -> None:
    child = {"status": "error", "message": "InvalidArgument: bad input shape"}
    res = _fill(_seen(0, child=child))
    assert res["status"] == "error" and res["message"] == "InvalidArgument: bad input shape"


def test_exit_without_result_quotes_stderr() -> None:
    res = _fill(_seen(1 << 8, tail="Traceback ...\nValueError: something broke\n"))
    assert res["status"] == "error" and "exited 1 without a result" in res["message"]
    assert "ValueError: something broke" in res["message"]


def test_signal_after_a_complete_result_keeps_it() -> None:
    child = {"status": "ok", "message": None, "raw": {"load_time_ms": 1.0, "hwm_reset": True}}
    res = _fill(_seen(signal.SIGSEGV, child=child))
    assert res["status"] == "ok" and res["signal"] == 11 and "after reporting its result" in res["message"]


def test_timeout_wins() -> None:
    res = _fill(_seen(signal.SIGKILL, timed_out=True), rlimit_as_mib=100)
    assert res["status"] == "timeout"


def test_phase_events_are_relayed_while_the_model_runs(tmp_path: Path) -> None:
    paths = make_samples(tmp_path)
    spec = {**FAST, "artifact": str(paths["tflite"]), "min_s": 1.5, "max_s": 5.0, "max_runs": 10**9}
    p = subprocess.Popen([*AGENT, "run", json.dumps(spec)], stdout=subprocess.PIPE, text=True, env=AGENT_ENV)
    assert p.stdout is not None
    arrivals: dict[str, float] = {}
    progress: list[dict[str, Any]] = []
    for line in p.stdout:
        ev = json.loads(line)
        if ev["event"] == "progress":
            progress.append(ev)
        arrivals.setdefault(ev["phase"] if ev["event"] == "phase" else ev["event"], time.monotonic())
    p.wait()
    # progress: at most one per 0.25 s of measuring, runs counting up, never an ETA past max_s
    measured = arrivals["done"] - arrivals["measure"]
    assert 1 <= len(progress) <= measured / 0.25 + 1
    assert [e["runs"] for e in progress] == sorted(e["runs"] for e in progress)
    assert all(e["phase"] == "measure" and 0 <= e["eta_s"] <= 5.0 for e in progress)
    assert list(arrivals) == ["load", "first", "warmup", "measure", "progress", "done", "result"]
    assert arrivals["result"] - arrivals["measure"] > 1.0  # seen at its start, not at the end



def _gone(pid: int, within_s: float) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_agent_leaves_no_model_process(tmp_path: Path, sig: int) -> None:
    paths = make_samples(tmp_path)
    spec = {**FAST, "artifact": str(paths["tflite"]), "min_s": 30.0, "max_s": 30.0}
    p = subprocess.Popen([*AGENT, "run", json.dumps(spec)], stdout=subprocess.PIPE, text=True, env=AGENT_ENV)
    assert p.stdout is not None
    for line in p.stdout:
        if json.loads(line).get("phase") == "measure":
            break
    (model,) = children(p.pid)
    p.send_signal(sig)
    assert p.wait(timeout=10) == (-sig if sig == signal.SIGKILL else 128 + sig)
    assert _gone(model, within_s=5), "the model process outlived its agent"
