"""The shell line SSH and adb run: quoting, environment, PID report, exit status, df parsing."""

from __future__ import annotations

import subprocess

import pytest

from harness.transports.remote_shell import PidMarker, command_line, decode_exit, kill_script, parse_df

EVIL = ["x; touch /tmp/edgefarm-pwned", "$(id)", "`id`", "'\"", "a\nb", "*", "--", ""]


@pytest.mark.parametrize("wrap", [False, True])
def test_every_argument_arrives_verbatim(wrap: bool) -> None:
    line = command_line(["printf", "[%s]", *EVIL], {"X_1": "v; rm -rf /"}, wrap_sh=wrap)
    p = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=30)
    assert p.stdout == "".join(f"[{a}]" for a in EVIL)
    m = PidMarker()
    m.feed(p.stderr.encode())
    assert m.pid is not None and m.stderr() == ""


def test_environment_names_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid environment variable name"):
        command_line(["true"], {"A; rm": "x"}, wrap_sh=False)
    with pytest.raises(ValueError):
        command_line([], wrap_sh=False)


def test_exit_status_and_signals() -> None:
    line = command_line(["sh", "-c", "kill -TERM $$"], wrap_sh=True)
    assert decode_exit(subprocess.run(["sh", "-c", line], capture_output=True, timeout=30).returncode) == -15
    assert [decode_exit(c) for c in (0, 3, 127, 137, 255)] == [0, 3, 127, -9, 255]


def test_pid_line_found_after_login_noise_and_split_reads() -> None:
    m = PidMarker()
    for chunk in (b"Welcome!\nEDGEFARM_", b"PID=42", b"\nreal error\n"):
        m.feed(chunk)
    assert m.pid == 42 and m.stderr() == "Welcome!\nreal error\n"


def test_kill_script_takes_only_a_number() -> None:
    assert "-123" in kill_script(123)
    with pytest.raises(ValueError):
        kill_script("1; reboot")  # type: ignore[arg-type]


def test_parse_df() -> None:
    text = ("Filesystem     1024-blocks    Used Available Capacity Mounted on\n"
            "/dev/root         30000000 1000000  29000000       4% /\n")
    assert parse_df(text) == 29000000 * 1024
    assert parse_df("df: /nope: No such file or directory\n") is None
