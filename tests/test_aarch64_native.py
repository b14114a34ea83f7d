"""An "ARM board": llama-bench cross-compiled for aarch64 (ci/build_llama_tools.sh aarch64) run by the native
agent through qemu-user (the profile's [native] wrapper), then gated. Timings under emulation mean nothing;
the schema, statuses, memory figures (of the emulator's process, said in the note) and the gate do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from native_helpers import llama_tools
from remote_fixtures import local_profile
from test_native_run import RUN, make_native, one_record

from harness.records import load_run

EM_AARCH64 = 183
SYSROOT = "/usr/aarch64-linux-gnu"


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    return int.from_bytes(head[18:20], "little")


@pytest.fixture(scope="module")
def qemu() -> str:
    exe = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    if exe is None:
        pytest.skip("qemu-user is not installed (apt-get install qemu-user; ci/setup.sh --test does)")
    return exe


def test_native_agent_on_an_emulated_arm_board(qemu: str, tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    tools = llama_tools("aarch64")
    assert elf_machine(tools / "llama-bench") == EM_AARCH64  # really an ARM binary, not the host's
    wrapper = [qemu, "-L", SYSROOT]
    profiles = tmp_path / "profiles"
    p = make_native(local_profile(profiles, "armboard", tmp_path / "storage", **RUN), tools,
                    native={"wrapper": wrapper, "libs": []})
    p.write_text(p.read_text() + "\n[budgets]\npeak_rss_mib = 4096\ndecode_tokens_per_s = 0.001\n")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--profiles", str(profiles), "--device",
                        "armboard", "--artifact", str(tiny_samples["gguf"]), "--out", str(tmp_path / "out"), "-q"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = one_record(tmp_path / "out")
    assert rec.status == "ok" and rec.runtime["name"] == "llama-bench" and rec.runtime["wrapper"] == wrapper
    for name in ("prefill_tokens_per_s", "decode_tokens_per_s", "ttft_ms", "peak_rss_mib"):
        assert rec.metrics[name].value is not None and rec.metrics[name].value > 0, name
    assert "emulat" in (rec.metrics["peak_rss_mib"].note or "")
    g = subprocess.run([sys.executable, "-m", "harness.cli", "gate", str(tmp_path / "out"), "--profiles",
                        str(profiles), "--json", str(tmp_path / "gate.json")], capture_output=True, text=True,
                       timeout=300)
    verdict = json.loads((tmp_path / "gate.json").read_text())
    assert g.returncode == 0, g.stdout + g.stderr
    assert verdict["verdict"] == "pass", verdict
    assert [r.device.name for r in load_run(tmp_path / "out")] == ["armboard"]
