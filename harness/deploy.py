"""Content-addressed staging of the agent and artifacts on a device, through any Transport.

Files land under `<workdir>/<sha256><suffix>`, written beside and renamed (by the transport), verified by
hashing on the device after transfer, and not sent again when a file of that name and size is already there.

The agent (the agents/ package) travels as one reproducible zip (sorted entries, fixed timestamps, stored
uncompressed: its sha256 changes only with its content), is unpacked once on the device into
`<workdir>/agent-<sha256>/` (into a temporary directory, byte-compiled, then renamed: a killed unpack never
leaves a directory that is trusted) and runs as `python -m agents` with that directory on PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import agents
from agents.protocol import parse_event
from harness.errors import DeviceError
from harness.native import shell as native_shell
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


# Runs on the device with Python >= 3.8: verify the archive, unpack it beside its final name, byte-compile it
# there (so ordinary __pycache__ serves every later process), then rename into place. Leftovers of unpacks
# whose process is gone are removed.
_UNPACK_SNIPPET = (
    "import compileall,hashlib,os,shutil,sys,zipfile\n"
    "z,d,sha=sys.argv[1:4]\n"
    "if os.path.isdir(d):\n"
    "  print('ready'); sys.exit(0)\n"
    "h=hashlib.sha256()\n"
    "with open(z,'rb') as f:\n"
    "  for b in iter(lambda: f.read(1<<20), b''): h.update(b)\n"
    "if h.hexdigest()!=sha:\n"
    "  sys.stderr.write('agent archive %s has sha256 %s, expected %s\\n'%(z,h.hexdigest(),sha)); sys.exit(3)\n"
    "parent,base=os.path.split(d)\n"
    "for n in os.listdir(parent):\n"
    "  if n.startswith(base+'.tmp.'):\n"
    "    try:\n"
    "      os.kill(int(n.rsplit('.',1)[1]),0)\n"
    "    except (ValueError,ProcessLookupError):\n"
    "      shutil.rmtree(os.path.join(parent,n),True)\n"
    "    except OSError:\n"
    "      pass\n"
    "tmp='%s.tmp.%d'%(d,os.getpid())\n"
    "with zipfile.ZipFile(z) as f:\n"
    "  if any(n.startswith('/') or '..' in n.split('/') for n in f.namelist()):\n"
    "    sys.stderr.write('agent archive %s has unsafe paths\\n'%z); sys.exit(3)\n"
    "  f.extractall(tmp)\n"
    "compileall.compile_dir(tmp,quiet=2,ddir=d)\n"
    "try:\n"
    "  os.rename(tmp,d)\n"
    "except OSError:\n"
    "  shutil.rmtree(tmp,True)\n"
    "  if not os.path.isdir(d): raise\n"
    "print('ready')\n"
)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the archive depends on content only
AGENT_PACKAGE = Path(agents.__file__).resolve().parent


def agent_files(package: Path = AGENT_PACKAGE) -> list[tuple[str, Path]]:
    """(name in the archive, file) for every module of the agent package, sorted; not agents/native/."""
    out = []
    for path in package.rglob("*.py"):
        rel = path.relative_to(package.parent).as_posix()
        if "/__pycache__/" in rel or rel.startswith("agents/native/"):
            continue
        out.append((rel, path))
    return sorted(out)


def agent_zip_bytes(package: Path = AGENT_PACKAGE) -> bytes:
    """The agent as a reproducible zip: sorted entries, fixed timestamps and modes, stored uncompressed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, path in agent_files(package):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever the controller's OS
            z.writestr(info, path.read_bytes())
    return buf.getvalue()


def agent_archive(package: Path = AGENT_PACKAGE) -> Path:
    """The agent zip on this machine, written once under its sha256 (atomically) in the temp dir."""
    data = agent_zip_bytes(package)
    digest = hashlib.sha256(data).hexdigest()
    out = Path(tempfile.gettempdir()) / f"edgefarm-agent-{os.getuid()}" / f"{digest}.zip"
    if not out.exists() or out.stat().st_size != len(data):
        out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = out.with_name(f"{digest}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
    return out


def agent_argv(python: str, agent_dir: str, *args: str) -> list[str]:
    """argv that runs `python -m agents ARGS` from the unpacked agent directory on the device."""
    return ["env", f"PYTHONPATH={agent_dir}", python, "-m", "agents", *args]


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


def _remote_stat(transport: Transport, python: str | None, paths: list[str], *, full: bool) -> dict[str, list[object] | None]:
    # python None: a device without Python (the native agent flavour) answers the same through sh and sha256sum
    argv = ([python, "-c", _STAT_SNIPPET] if python else ["sh", "-c", native_shell.STAT, "sh"]) + ["1" if full else "0", *paths]
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
    python: str | None,
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
    """The agent zip under its content hash (labgrid style), unpacked once; `remote` is the unpacked directory."""
    staged = stage(transport, python, workdir, agent_archive(), suffix=".agent.zip")
    agent_dir = posixpath.join(workdir, "agent-" + staged.sha256)
    argv = [python, "-c", _UNPACK_SNIPPET, staged.remote, agent_dir, staged.sha256]
    res = transport.run(argv, timeout=300)
    if res.exit_code != 0 or "ready" not in res.stdout:
        raise DeviceError(transport.name, f"cannot unpack the agent into {agent_dir}",
                          argv=argv[:2] + ["<unpack>"] + argv[3:], exit_code=res.exit_code, stdout=res.stdout,
                          stderr=res.stderr)
    return Staged(staged.local, agent_dir, staged.sha256, staged.size, staged.stats)


def probe(transport: Transport, python: str, agent_remote: str) -> dict[str, Any]:
    """Run `python -m agents probe` on the device: its fingerprint and runtimes (agents/README.md)."""
    argv = agent_argv(python, agent_remote, "probe")
    res = transport.run(argv, timeout=120)
    for line in reversed(res.stdout.splitlines()):
        obj = parse_event(line)
        if obj is not None and obj.get("event") == "probe":
            return obj
    raise DeviceError(transport.name, "agent probe gave no answer", argv=argv,
                      exit_code=res.exit_code, stdout=res.stdout, stderr=res.stderr)
