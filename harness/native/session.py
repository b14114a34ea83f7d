"""The native flavour on one device: stage agent.sh, the tools and their libraries (content-addressed, through
harness/deploy.py), probe the device, and turn a WorkloadSpec into the agent's argv and its output into the
Python agent's `result` event."""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.protocol import parse_event
from agents.spec import WorkloadSpec
from harness import deploy
from harness.errors import DeviceError
from harness.native import shell
from harness.native.config import DEVICE_PREFIX, NativeConfig
from harness.native.result import NativeRun, build_result
from harness.native.tools import TOOLS, Tool, configured_path, tool_for
from harness.transports.base import DeviceFacts, Transport

AGENT_SH = Path(__file__).resolve().parents[2] / "agents" / "native" / "agent.sh"
LineCallback = Callable[[str], None]


def wants_native(flavour: str, facts: DeviceFacts) -> bool:
    """`native`, or `auto` on a device where the transport found no Python."""
    return flavour == "native" or (flavour == "auto" and not facts.python)


def library_files(paths: list[str]) -> list[tuple[str, Path]]:
    """(name on the device, real file) for each library: a directory gives its *.so* entries (symlinks by
    their own names, pointing at the resolved file), so sonames such as libllama.so.0 resolve."""
    out: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw).expanduser()
        entries = sorted(p.iterdir()) if p.is_dir() else [p]
        for e in entries:
            if ".so" in e.name and e.exists():
                out[e.name] = e.resolve()
    return sorted(out.items())


class NativeAgent:
    """agent.sh, tools and libraries staged on one device, and its probe."""

    def __init__(self, name: str, transport: Transport, cfg: NativeConfig, workdir: str) -> None:
        self.name, self.transport, self.cfg, self.workdir = name, transport, cfg, workdir
        self.agent = deploy.stage(transport, None, workdir, AGENT_SH, suffix=".agent.sh")
        self.bytes_sent = self.agent.stats.bytes_sent
        self.tools: dict[str, str] = {}  # format -> path on the device
        self.libdir: str | None = None
        for tool in TOOLS.values():
            path = configured_path(cfg, tool)
            if path is not None:
                self.tools[tool.format] = self._tool(path, tool)
        if cfg.libs:
            self.libdir = self._libs(cfg.libs)
        self.probe = self._probe()
        self.fingerprint: dict[str, Any] = dict(self.probe)

    def _push(self, local: Path, suffix: str) -> str:
        if not local.is_file():
            raise DeviceError(self.name, f"[native] names {local}, which is not a file on this controller")
        staged = deploy.stage(self.transport, None, self.workdir, local, suffix=suffix)
        self.bytes_sent += staged.stats.bytes_sent
        return staged.remote

    def _tool(self, path: str, tool: Tool) -> str:
        if path.startswith(DEVICE_PREFIX):
            return path[len(DEVICE_PREFIX):]
        remote = self._push(Path(path).expanduser(), "." + tool.binary)
        self._sh(["chmod", "755", remote], f"cannot make {remote} executable")
        return remote

    def _libs(self, paths: list[str]) -> str:
        device = [p[len(DEVICE_PREFIX):] for p in paths if p.startswith(DEVICE_PREFIX)]
        files = library_files([p for p in paths if not p.startswith(DEVICE_PREFIX)])
        pairs: list[str] = []
        for name, real in files:
            pairs += [name, self._push(real, ".so")]
        dirs = list(device)
        if pairs:
            key = hashlib.sha256("\0".join(pairs).encode()).hexdigest()[:32]
            libdir = posixpath.join(self.workdir, "libs-" + key)
            self._sh(["sh", "-c", shell.LIBDIR, "sh", libdir, *pairs], f"cannot make the library directory {libdir}")
            dirs.insert(0, libdir)
        return ":".join(dirs)

    def _sh(self, argv: list[str], what: str) -> str:
        res = self.transport.run(argv, timeout=120)
        if res.exit_code != 0:
            raise DeviceError(self.name, what, argv=argv[:3], exit_code=res.exit_code, stdout=res.stdout,
                              stderr=res.stderr)
        return res.stdout

    def _probe(self) -> dict[str, Any]:
        argv = [self.cfg.shell, self.agent.remote, "probe", *self.tools.values()]
        out = self._sh(argv, "native agent probe failed")
        for line in reversed(out.splitlines()):
            obj = parse_event(line)
            if obj is not None and obj.get("event") == "probe":
                present = obj.get("tools") or {}
                obj["runtimes"] = {TOOLS[f].runtime_key: bool(present.get(p)) for f, p in self.tools.items()}
                obj["tool_paths"] = dict(self.tools)
                obj.setdefault("fingerprint", {})["agent_flavour"] = "native"
                return obj
        raise DeviceError(self.name, "native agent probe gave no answer", argv=argv, stdout=out)

    def threads(self, spec: WorkloadSpec) -> int:
        """Threads as the Python agent would use them: asked, else the pinned CPUs, else the CPUs online."""
        if spec.threads:
            return spec.threads
        if spec.pin_cpus:
            return len(spec.pin_cpus)
        n = (self.probe.get("fingerprint") or {}).get("cpu_count")
        return int(n) if isinstance(n, int) and n > 0 else 1

    def command(self, spec_in: WorkloadSpec | dict[str, Any], downstream: LineCallback) -> tuple[list[str], LineCallback]:
        """The agent's argv for this spec, and a line callback that hands `downstream` the Python agent's events
        (phases and progress as they come, then one `result`)."""
        spec = spec_in if isinstance(spec_in, WorkloadSpec) else WorkloadSpec.from_dict(spec_in)
        fmt = spec.format or ""
        tool = tool_for(fmt)
        if tool is None or fmt not in self.tools:
            known = tool.binary if tool else "no tool"
            hint = f"set [native] {tool.key} in the profile ({tool.build})" if tool else "no native tool exists yet"
            raise DeviceError(self.name, f"the native agent has {known} for {fmt or 'this'} artifacts here: {hint}")
        path = self.tools[fmt]
        argv = [self.cfg.shell, self.agent.remote, "run", "--timeout-s", repr(float(spec.timeout_s)),
                "--poll-s", repr(self.cfg.poll_s), "--artifact", spec.artifact, "--run-glob", tool.run_glob,
                "--keep-stderr", str(tool.keep_stderr)]
        if spec.artifact_sha256:
            argv += ["--sha256", spec.artifact_sha256]
        for phase, glob in tool.phases:
            argv += ["--phase", f"{phase}={glob}"]
        if self.libdir:
            argv += ["--libs", self.libdir]
        if spec.pin_cpus:
            argv += ["--cpu-mask", format(sum(1 << c for c in set(spec.pin_cpus)), "x")]
        if spec.rlimit_as_mib is not None:
            argv += ["--rlimit-kib", str(int(spec.rlimit_as_mib * 1024))]
        threads = self.threads(spec)
        argv += ["--", *self.cfg.wrapper, *tool.argv(path, spec, threads, self.cfg)]
        run = NativeRun()

        def on_line(line: str) -> None:
            ev = parse_event(line)
            if ev is None:
                return
            kind = str(ev.get("event", ""))
            if kind.startswith("native_") or kind == "phase":
                run.add(ev)
            if not kind.startswith("native_"):
                downstream(line)  # phase, progress, error: the Python agent's events, passed on as they come
            elif kind == "native_end":
                res = build_result(spec, run, tool, self.cfg, list(self.cfg.wrapper))
                if res.runtime and not res.runtime.get("threads"):  # never null: what the tool was told to use
                    res.runtime["threads"] = threads
                    res.runtime["threads_source"] = "as passed to %s" % tool.binary
                downstream(json.dumps(res.to_event(), sort_keys=True, allow_nan=False))

        return argv, on_line
