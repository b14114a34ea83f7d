"""Shared fixtures: real sample artifacts (tiny), a fast `local` profile, isolated locks and caches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FAST_LOCAL = """
schema = 1
name = "local"
class = "laptop"
description = "this machine, fast settings for tests"
ram_mib = 4096
[transport]
kind = "local"
[memory]
cap_mib = 3072
[run]
warmup_runs = 1
warmup_min_s = 0.05
min_runs = 20
min_s = 0.2
max_s = 2.0
gguf_prompt_tokens = 16
gguf_new_tokens = 16
gguf_repetitions = 2
[budgets]
peak_rss_mib = 1024
load_time_ms = 10000
"""


@pytest.fixture(scope="session", autouse=True)
def _isolated_locks(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Device locks are real flocks; tests get their own directory so a developer's run is not disturbed.
    os.environ.setdefault("EDGEFARM_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))


@pytest.fixture(scope="session")
def tiny_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real ONNX, TFLite and GGUF students (tiny sizes), keyed by format."""
    from harness.samples import write_samples

    paths = write_samples(tmp_path_factory.mktemp("samples"), size="tiny")
    return {p.suffix.lstrip("."): p for p in paths}


@pytest.fixture(scope="session")
def fast_profiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile directory holding a quick `local` profile."""
    d = tmp_path_factory.mktemp("profiles")
    (d / "local.toml").write_text(FAST_LOCAL)
    return d
