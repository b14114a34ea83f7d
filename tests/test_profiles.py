"""Device profiles are strict: every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError, UserError
from harness.profiles import load_all, load_profile, resolve

REPO = Path(__file__).resolve().parent.parent

GOOD = """
schema = 1
name = "{name}"
class = "board"
ram_mib = 2048
[transport]
kind = "local"
[budgets]
peak_rss_mib = 512
"""


def write(tmp_path: Path, text: str, name: str = "dev") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def test_shipped_profiles_all_load() -> None:
    profs = load_all(REPO / "device_profiles")
    assert {"local", "pixel7", "rpi5", "laptop4g"} <= set(profs)
    assert profs["local"].transport.kind == "local"
    assert profs["pixel7"].transport.kind == "adb"
    assert profs["rpi5"].transport.kind == "ssh"


def test_good_profile(tmp_path: Path) -> None:
    p = load_profile(write(tmp_path, GOOD.format(name="dev")))
    assert p.device_class == "board" and p.ram_mib == 2048 and p.budgets == {"peak_rss_mib": 512.0}
    assert p.run.min_runs == 50  # default


@pytest.mark.parametrize("mutation, key, words", [
    (("ram_mib = 2048", "ram_mb = 2048"), "ram_mb", "unknown key"),
    (("ram_mib = 2048", 'ram_mib = "2048"'), "ram_mib", "expected an integer"),
    (('class = "board"', 'class = "toaster"'), "class", "expected one of"),
    (("peak_rss_mib = 512", "peak_rss_mb = 512"), "budgets.peak_rss_mb", "unknown metric"),
    (('kind = "local"', 'kind = "local"\nretries = 3'), "transport.retries", "unknown key"),
    (('kind = "local"', 'kind = "ssh"'), "transport.host", "required"),
    (('name = "dev"', 'name = "other"'), "name", "must match"),
])
def test_mistakes_name_file_and_key(tmp_path: Path, mutation: tuple[str, str], key: str, words: str) -> None:
    text = GOOD.format(name="dev").replace(*mutation)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_profile(path)
    msg = str(exc.value)
    assert str(path) in msg and f"'{key}'" in msg and words in msg


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.format(name="dev").replace('class = "board"\n', ""))
    with pytest.raises(ConfigError, match=r"key 'class'.*missing required"):
        load_profile(path)


def test_typo_gets_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.format(name="dev").replace("ram_mib", "ram_mbi"))
    with pytest.raises(ConfigError, match="did you mean 'ram_mib'"):
        load_profile(path)


def test_env_reference_and_missing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.format(name="dev").replace('kind = "local"', 'kind = "adb"\nserial = "$EF_TEST_SERIAL"')
    path = write(tmp_path, text)
    monkeypatch.delenv("EF_TEST_SERIAL", raising=False)
    prof = load_profile(path)  # listing devices must not fail on one unconfigured device...
    with pytest.raises(ConfigError, match=r"key 'transport.serial'.*EF_TEST_SERIAL, which is not set"):
        prof.require_resolved()  # ...but using it does
    monkeypatch.setenv("EF_TEST_SERIAL", "127.0.0.1:6001")
    assert load_profile(path).transport.serial == "127.0.0.1:6001"


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "name = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_profile(path)


def test_resolve_unknown_lists_known(tmp_path: Path) -> None:
    write(tmp_path, GOOD.format(name="dev"))
    with pytest.raises(UserError, match="unknown device 'nope'.*known devices: dev"):
        resolve(["nope"], tmp_path)
    assert [p.name for p in resolve(["all"], tmp_path)] == ["dev"]
