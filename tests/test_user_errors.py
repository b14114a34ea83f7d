"""Every user error is one line and exit 2, never a traceback and never exit 1 (issue 11), through the real CLI.

Each case also checks that nothing was started: no run directory appears when the command was refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.profiles import host_ram_mib, load_profile

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "fixtures" / "results"
EDGEFARM = [sys.executable, "-m", "harness.cli"]
LOCAL = 'schema = 1\nname = "local"\nclass = "laptop"\n[transport]\nkind = "local"\n'


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGEFARM, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def one_line_exit_2(r: subprocess.CompletedProcess[str], *wants: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for w in wants:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def profiles(tmp: Path, local_extra: str = "", raw: bytes | None = None) -> Path:
    d = tmp / "profiles"
    d.mkdir(exist_ok=True)
    if raw is not None:
        (d / "local.toml").write_bytes(raw)
    else:
        (d / "local.toml").write_text(LOCAL.replace("[transport]", local_extra + "[transport]"))
    return d


def run(tmp: Path, prof: Path, artifact: Path, *extra: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return cli("run", "--profiles", str(prof), "--artifact", str(artifact), "--out", str(tmp / "out"), *extra,
               env=env)


def test_non_utf8_profile_and_policy(tmp_path: Path) -> None:
    d = profiles(tmp_path, raw=b'schema = 1\nname = "loc\xffal"\n')
    one_line_exit_2(cli("devices", "--profiles", str(d)), f"{d / 'local.toml'}: not UTF-8 text")
    pol = tmp_path / "p.toml"
    pol.write_bytes(b"schema = 1\ndescription = '\xfe'\n")
    one_line_exit_2(cli("gate", str(RESULTS / "mixed"), "--policy", str(pol)), f"{pol}: not UTF-8 text")


def test_a_directory_named_toml(tmp_path: Path) -> None:
    d = profiles(tmp_path)
    (d / "x.toml").mkdir()
    one_line_exit_2(cli("devices", "--profiles", str(d)), f"{d / 'x.toml'}: is a directory, not a TOML file")
    one_line_exit_2(cli("gate", str(RESULTS / "mixed"), "--policy", str(d / "x.toml")), "is a directory")


def test_policy_numbers_are_range_checked(tmp_path: Path) -> None:
    pol = tmp_path / "p.toml"
    for text, key in (("[stats]\nseed = -1\n", "stats.seed"), ("[stats]\nconfidence = nan\n", "stats.confidence"),
                      ('[[budget]]\nmetric = "latency_ms_p95"\nmax = inf\n', "budget[0].max"),
                      ('[[budget]]\nmetric = "latency_ms_p95"\nmax = -5.0\n', "budget[0].max"),
                      ('[[relative]]\nmetric = "latency_ms_p95"\nmax_worse_pct = -1.0\n', "relative[0].max_worse_pct")):
        pol.write_text("schema = 1\n" + text)
        one_line_exit_2(cli("gate", str(RESULTS / "mixed"), "--policy", str(pol)), f"{pol}: key '{key}'")


@pytest.mark.parametrize("text,key", [
    ("ram_mib = -4096\n", "ram_mib"), ("ram_mib = 0\n", "ram_mib"), ("ram_mib = 99999999999\n", "ram_mib"),
    ("[run]\nmax_s = nan\n", "run.max_s"), ("[run]\nmax_s = inf\n", "run.max_s"), ("[run]\nmin_runs = 0\n", "run.min_runs"),
    ("[run]\ntimeout_s = -1.0\n", "run.timeout_s"), ("[run]\ndynamic_dims = { seq = -64 }\n", "run.dynamic_dims.seq"),
    ("[memory]\ncap_mib = 0\n", "memory.cap_mib"), ("ram_mib = 2048\n[memory]\ncap_mib = 4096\n", "memory.cap_mib"),
    ("[budgets]\npeak_rss_mib = -1.0\n", "budgets.peak_rss_mib"),
])
def test_profile_numbers_are_range_checked(tmp_path: Path, tiny_samples: dict[str, Path], text: str, key: str) -> None:
    d = tmp_path / "profiles"
    d.mkdir()
    top, _, table = text.partition("[")
    (d / "local.toml").write_text(LOCAL.replace("[transport]", top + "[transport]") + ("[" + table if table else ""))
    one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"]), f"{d / 'local.toml'}: key '{key}'")
    assert not (tmp_path / "out").exists()


def test_a_memory_cap_above_this_machines_ram(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    ram = host_ram_mib()
    assert ram is not None
    d = profiles(tmp_path)
    (d / "local.toml").write_text(LOCAL + f"[memory]\ncap_mib = {ram + 1024}\n")
    one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"]), "key 'memory.cap_mib'", "more than this machine's RAM")


def test_env_vars_fill_numbers_and_name_themselves_when_wrong(tmp_path: Path, tiny_samples: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    d = profiles(tmp_path)
    (d / "local.toml").write_text(LOCAL.replace("[transport]", 'ram_mib = "$EF_TEST_RAM"\n[transport]'))
    monkeypatch.setenv("EF_TEST_RAM", "4096")
    assert load_profile(d / "local.toml").ram_mib == 4096
    one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"], env={"EF_TEST_RAM": "4 GB"}),
                    "key 'ram_mib': $EF_TEST_RAM is '4 GB': expected an integer")
    one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"], env={"EF_TEST_RAM": "-4096"}),
                    "key 'ram_mib': expected a number > 0")


def test_a_requested_device_with_an_unset_variable_is_one_line(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    d = profiles(tmp_path)
    shutil.copy(REPO / "device_profiles" / "pixel7.toml", d / "pixel7.toml")
    env = {k: v for k, v in os.environ.items() if k != "EDGEFARM_PIXEL7_SERIAL"}
    r = subprocess.run([*EDGEFARM, "run", "--profiles", str(d), "--device", "local", "--device", "pixel7",
                        "--artifact", str(tiny_samples["tflite"]), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300, env=env)
    one_line_exit_2(r, f"{d / 'pixel7.toml'}: key 'transport.serial'", "EDGEFARM_PIXEL7_SERIAL, which is not set")
    assert not (tmp_path / "out").exists()  # refused before anything ran: no half matrix


def test_bad_cli_values(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    d = profiles(tmp_path)
    for flag, value, want in (("--max-s", "nan", "expected a finite number"), ("--max-s", "inf", "finite"),
                              ("--min-runs", "-1", "expected a number >= 1"), ("--timeout", "0", "> 0"),
                              ("--threads", "0", ">= 1"), ("--seed", "-1", ">= 0"), ("--min-s", "x", "expected a number")):
        one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"], flag, value), f"argument {flag}", want)
    one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"], "--spec-json", "{bad"), "--spec-json")
    one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"], "--spec-json", "[1]"), "--spec-json")
    one_line_exit_2(cli("compare", str(RESULTS / "baseline"), str(RESULTS / "mixed"), "--factor", "nan"),
                    "argument --factor")
    one_line_exit_2(cli("gate"), "RUN_DIR")
    assert not (tmp_path / "out").exists()


def test_out_naming_a_file(tmp_path: Path, tiny_samples: dict[str, Path]) -> None:
    d = profiles(tmp_path)
    f = tmp_path / "out"
    f.write_text("not a directory\n")
    one_line_exit_2(run(tmp_path, d, tiny_samples["tflite"]), "argument --out", f"{f} is a file, not a directory")
    one_line_exit_2(cli("run", "--profiles", str(d), "--artifact", str(tiny_samples["tflite"]), "--out",
                        str(f / "sub")), f"{f} is a file")
    assert f.read_text() == "not a directory\n"


def test_deeply_nested_golden_json(tmp_path: Path) -> None:
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"schema": 1, "name": "s"}\n' + "[" * 200_000 + "]" * 200_000 + "\n")
    r = cli("golden", "validate", str(suite))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{suite}:2: JSON nested too deeply to read" in r.stderr
    run_dir = tmp_path / "run"
    shutil.copytree(RESULTS / "mixed", run_dir)
    (run_dir / "golden").mkdir()
    (run_dir / "golden" / "student-int8.json").write_text("[" * 200_000 + "]" * 200_000)
    one_line_exit_2(cli("gate", str(run_dir)), "student-int8.json: not a golden result (JSON nested too deeply")
