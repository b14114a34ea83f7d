"""Content-addressed staging of the agent and artifacts on a device, through any Transport.

Files land under `<workdir>/<sha256><suffix>`, written beside and renamed (by the transport), verified by
hashing on the device after transfer, and not sent again when a file of that name and size is already there.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import agents
from harness.errors import DeviceError
from harness.transports.base import PushStats, Transport

# Runs on the device with any Python 3: prints {path: [size, sha256 or null]} for each argv path.
_STAT_SNIPPET = (
    "import hashlib,json,os,sys\n"
    "full=sys.argv[1]=='1'\n"
    "out={}\n"
    "for p in sys.argv[2:]:\n"
    "  try:\n"
    "    st=os.stat(p)\n"
    "  except OSError:\n"
    "    out[p]=None; continue\n"
    "  h=None\n"
    "  if full:\n"
    "    d=hashlib.sha256()\n"
    "    with open(p,'rb') as f:\n"
    "      for b in iter(lambda: f.read(1<<20), b''): d.update(b)\n"
    "    h=d.hexdigest()\n"
    "  out[p]=[st.st_size,h]\n"
    "print(json.dumps(out))\n"
)


def agent_source() -> Path:
    """The agent file shipped with this edgefarm."""
    return Path(agents.__file__).resolve().parent / "agent.py"


@lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 of a local file, cached by (path, size, mtime)."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@dataclass
class Staged:
    local: Path
    remote: str
    sha256: str
    size: int
    stats: PushStats


def _remote_stat(transport: Transport, python: str, paths: list[str], *, full: bool) -> dict[str, list[object] | None]:
    argv = [python, "-c", _STAT_SNIPPET, "1" if full else "0", *paths]
    res = transport.run(argv, timeout=600)
    if res.exit_code != 0:
        raise DeviceError(transport.name, "cannot inspect staged files", argv=argv[:1] + ["-c", "<stat>"] + argv[3:],
                          exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr)
    try:
        out: dict[str, list[object] | None] = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceError(transport.name, "unexpected output while inspecting staged files",
                          stdout=res.stdout, stderr=res.stderr) from None
    return out


def stage(
    transport: Transport,
    python: str,
    workdir: str,
    local: Path,
    *,
    suffix: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Staged:
    """Make `local` present on the device under its sha256 (parent dirs created by the transport)."""
    digest = sha256_file(local)
    size = local.stat().st_size
    remote = posixpath.join(workdir, digest + (suffix if suffix is not None else local.suffix))
    t0 = time.monotonic()
    have = _remote_stat(transport, python, [remote], full=False).get(remote)
    if have is not None and have[0] == size:
        return Staged(local, remote, digest, size, PushStats(remote, 0, True, time.monotonic() - t0))
    facts = transport.facts()
    if facts.free_storage_bytes is not None and facts.free_storage_bytes < size:
        raise DeviceError(
            transport.name,
            f"not enough storage for {local.name}: need {size} bytes, {facts.free_storage_bytes} free in {workdir}",
        )
    transport.push(str(local), remote, progress=progress)
    got = _remote_stat(transport, python, [remote], full=True).get(remote)
    if got is None or got[1] != digest:
        raise DeviceError(transport.name, f"{local.name} arrived corrupted at {remote} "
                                          f"(sha256 {got[1] if got else 'missing'} != {digest})")
    return Staged(local, remote, digest, size, PushStats(remote, size, False, time.monotonic() - t0))


def stage_agent(transport: Transport, python: str, workdir: str) -> Staged:
    """The agent under its content hash (labgrid style), so devices never run a stale agent."""
    return stage(transport, python, workdir, agent_source(), suffix=".agent.py")


def probe(transport: Transport, python: str, agent_remote: str) -> dict[str, Any]:
    """Run `agent.py probe` on the device: its fingerprint and runtimes (agents/README.md)."""
    argv = [python, agent_remote, "probe"]
    res = transport.run(argv, timeout=120)
    for line in reversed(res.stdout.splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("event") == "probe":
            return obj
    raise DeviceError(transport.name, "agent probe gave no answer", argv=argv,
                      exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr)
