"""What an artifact is, seen from the controller: path, name, format, size, sha256."""

from __future__ import annotations

from pathlib import Path

from agents import formats as _agent
from harness.deploy import sha256_file
from harness.errors import ArtifactError
from harness.records import ArtifactInfo


def inspect(path: Path) -> ArtifactInfo:
    """Identify an artifact by its bytes; a missing or unknown file is an ArtifactError naming it."""
    if not path.is_file():
        raise ArtifactError(f"artifact {path}: no such file")
    try:
        fmt = _agent.detect_format(str(path))  # one detector, shared with the device side
    except _agent.ArtifactError as e:
        raise ArtifactError(f"artifact {e}") from None
    return ArtifactInfo(path=str(path.resolve()), name=path.name, format=fmt,
                        size_bytes=path.stat().st_size, sha256=sha256_file(path))
