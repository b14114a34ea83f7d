"""`pytest -n 2 --device all` against stand-in devices (local, an sshd board, an adbd phone) gives the same
outcomes as a sequential run, and every device's tests stay on one worker."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from remote_fixtures import (  # noqa: F401  (fixtures)
    adb_profile,
    adb_server,
    board_factory,
    local_profile,
    phone_factory,
    ssh_profile,
)

from harness.records import load_run


def outcomes(junit: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(junit).iter("testcase"):
        name = re.sub(r"@[\w.-]+$", "", f"{case.get('classname')}::{case.get('name')}")  # xdist group suffix
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        out[name] = kind
    return out


def test_parallel_farm_matches_sequential(pytester: pytest.Pytester, board_factory, adb_server,  # noqa: F811
                                          phone_factory, tiny_samples: dict[str, Path],  # noqa: F811
                                          tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    local_profile(profiles, "laptop", tmp_path / "laptop-storage")
    ssh_profile(profiles, "board", board_factory())
    adb_profile(profiles, "phone", adb_server, phone_factory())
    for p in profiles.glob("*.toml"):
        p.write_text(p.read_text() + "\n[budgets]\npeak_rss_mib = 2048\nload_time_ms = 30000\n")
    arts = [str(tiny_samples["onnx"]), str(tiny_samples["tflite"])]
    common = ["-p", "no:cacheprovider", "--edgefarm-profiles", str(profiles), "--device", "all",
              "--artifact", arts[0], "--artifact", arts[1], "-v"]
    seq = pytester.runpytest_subprocess(*common, "--edgefarm-out", str(tmp_path / "seq"),
                                        "--junitxml", str(tmp_path / "seq.xml"), timeout=300)
    par = pytester.runpytest_subprocess(*common, "-n", "2", "--edgefarm-out", str(tmp_path / "par"),
                                        "--junitxml", str(tmp_path / "par.xml"), timeout=300)
    seq.assert_outcomes(passed=18)  # 3 devices x 2 artifacts x (run + 2 budgets)
    par.assert_outcomes(passed=18)
    assert outcomes(tmp_path / "seq.xml") == outcomes(tmp_path / "par.xml")
    for device in ("laptop", "board", "phone"):
        workers = {line.split("]")[0] for line in par.outlines if f"edgefarm::{device}::" in line and "PASSED" in line}
        assert len(workers) == 1, (device, workers)  # no two workers ever drive one device
    for run in ("seq", "par"):
        recs = load_run(tmp_path / run)
        assert sorted((r.device.name, r.artifact.name) for r in recs) == sorted(
            (d, Path(a).name) for d in ("laptop", "board", "phone") for a in arts)
        assert all(r.status == "ok" for r in recs), [(r.device.name, r.message) for r in recs if r.status != "ok"]
