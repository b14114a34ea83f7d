"""Installed distribution versions from *.dist-info / *.egg-info names on sys.path (nothing is imported)."""

from __future__ import annotations

import os
import sys
from typing import Dict, Sequence


def _norm_dist(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def dist_versions(names: Sequence[str]) -> Dict[str, str]:
    """Versions of installed distributions from their *.dist-info / *.egg-info names on sys.path.

    importlib.metadata would cost the agent ~5 MiB of RSS; a directory listing costs nothing.
    """
    want = {_norm_dist(n): n for n in names}
    out: Dict[str, str] = {}
    for d in sys.path:
        try:
            entries = os.listdir(d or ".")
        except OSError:
            continue
        for e in entries:
            if not (e.endswith(".dist-info") or e.endswith(".egg-info")):
                continue
            name, _, ver = e.rsplit(".", 1)[0].partition("-")
            key = _norm_dist(name)
            if key in want and want[key] not in out and ver:
                out[want[key]] = ver.split("-")[0]
    return out
