"""The harness version recorded in every result."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def harness_version() -> str:
    try:
        return version("edgefarm")
    except PackageNotFoundError:
        return "0+unknown"
