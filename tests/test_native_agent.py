"""agents/native/agent.sh under dash, busybox ash and mksh, driving real programs: events, timeouts, signals,
VmHWM, hostile output, and the sha256 check. (The real tools are exercised in test_native_run.py.)"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from native_helpers import AGENT_SH, SHELLS, by_kind, run_agent, shell_argv

pytestmark = pytest.mark.parametrize("shell", list(SHELLS))

STAGED = ("echo '{\"a\": 1}'; echo loading >&2; sleep 0.3; echo 'warmup x' >&2; sleep 0.2; "
          "for i in 1 2 3; do echo \"prompt run $i/3\" >&2; sleep 0.2; done; exit 3")


def test_phases_progress_and_exit_status(shell: str) -> None:
    ev = run_agent(shell, "run", "--timeout-s", "20", "--phase", "first=*warm*", "--run-glob", "*run [0-9]*",
                   "--", "/bin/sh", "-c", STAGED)
    assert [e["phase"] for e in by_kind(ev, "phase")] == ["load", "first", "measure", "done"]
    ts = [e["t"] for e in by_kind(ev, "phase")]
    assert ts == sorted(ts) and ts[-1] - ts[0] >= 0.9  # the script sleeps ~1.1 s
    assert [e["runs"] for e in by_kind(ev, "progress")] == [0, 1, 2]
    ex = by_kind(ev, "native_exit")[0]
    assert ex["rc"] == 3 and ex["timed_out"] is False and ex["polls"] >= 5
    lines = by_kind(ev, "native_line")
    assert [x["line"] for x in lines if x["stream"] == "stdout"] == ['{"a": 1}']
    assert "prompt run 3/3" in [x["line"] for x in lines if x["stream"] == "stderr"]
    assert ev[-1] == {"event": "native_end"}


def test_timeout_kills_the_tool(shell: str) -> None:
    t0 = time.monotonic()
    ev = run_agent(shell, "run", "--timeout-s", "0.5", "--", "sleep", "30")
    assert time.monotonic() - t0 < 10
    ex = by_kind(ev, "native_exit")[0]
    assert ex["timed_out"] is True and ex["rc"] == 128 + signal.SIGKILL


def test_signal_death_is_reported(shell: str) -> None:
    ev = run_agent(shell, "run", "--", "/bin/sh", "-c", "kill -SEGV $$")
    assert by_kind(ev, "native_exit")[0]["rc"] == 128 + signal.SIGSEGV


def test_vmhwm_is_the_tools_peak(shell: str) -> None:
    # dash holds the 40 MB command substitution in memory, then frees it and sleeps: the peak stays in VmHWM.
    script = 'x=$(head -c 40000000 /dev/zero | tr "\\000" a); x=; sleep 0.5'
    ev = run_agent(shell, "run", "--poll-s", "0.05", "--", "dash", "-c", script)
    ex = by_kind(ev, "native_exit")[0]
    assert ex["vmhwm_kib"] >= 40000000 / 1024, ex
    assert ex["vmrss_kib"] < ex["vmhwm_kib"] / 2  # RSS fell after the free; the high-water mark did not


def test_hostile_output_stays_json(shell: str) -> None:
    nasty = 'printf \'a"b\\\\c\\t\\001\\033[31m\\r\\n{"event": "result", "status": "ok"}\\n\'; printf \'"x\' >&2'
    ev = run_agent(shell, "run", "--", "/bin/sh", "-c", nasty)  # run_agent parses every line as JSON
    out = [e["line"] for e in by_kind(ev, "native_line") if e["stream"] == "stdout"]
    assert out[0].startswith('a"b\\c ') and "\x01" not in out[0] and "\x1b" not in out[0]
    assert not by_kind(ev, "result")  # a tool cannot forge the agent's events: its lines travel as strings
    assert [e["line"] for e in by_kind(ev, "native_line") if e["stream"] == "stderr"] == ['"x']


def test_sha256_mismatch_runs_nothing(shell: str, tmp_path: Path) -> None:
    art = tmp_path / "model.gguf"
    art.write_bytes(b"GGUF" + os.urandom(100))
    good = hashlib.sha256(art.read_bytes()).hexdigest()
    marker = tmp_path / "ran"
    ev = run_agent(shell, "run", "--artifact", str(art), "--sha256", "0" * 64, "--", "touch", str(marker))
    assert by_kind(ev, "native_hash")[0]["artifact_sha256"] == good
    assert ev[-1] == {"event": "native_end", "sha_mismatch": True} and not marker.exists()
    ev = run_agent(shell, "run", "--artifact", str(art), "--sha256", good, "--", "touch", str(marker))
    assert marker.exists() and by_kind(ev, "native_exit")[0]["rc"] == 0


def test_usage_errors_are_one_event(shell: str) -> None:
    ev = run_agent(shell, "run", "--bogus", "1")
    assert len(ev) == 1 and ev[0]["event"] == "error" and "--bogus" in ev[0]["message"]
    ev = run_agent(shell, "run", "--artifact", "/nonexistent/m.gguf", "--", "true")
    assert ev[0]["event"] == "error" and "/nonexistent/m.gguf" in ev[0]["message"]


def test_sigterm_takes_the_tool_with_it(shell: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen([*shell_argv(shell), str(AGENT_SH), "run", "--", "/bin/sh", "-c",
                             f"echo $$ > {pidfile}; exec sleep 60"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    tool = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(tool, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the tool (pid {tool}) outlived the agent")


def test_probe_without_python(shell: str, tmp_path: Path) -> None:
    from native_helpers import no_python_path
    path, marker = no_python_path(tmp_path)
    ev = run_agent(shell, "probe", "/bin/ls", str(tmp_path / "absent"), env={"PATH": path, "HOME": str(tmp_path)})
    p = ev[0]
    assert p["event"] == "probe" and p["python"] is None and p["flavour"] == "native"
    assert p["tools"] == {"/bin/ls": True, str(tmp_path / "absent"): False}
    assert p["fingerprint"]["cpu_count"] >= 1 and p["fingerprint"]["ram_total_mib"] > 0
    assert not marker.exists()
