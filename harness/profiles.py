"""Device profiles: passive descriptions of devices (device_profiles/*.toml). No I/O to devices here.

Secrets never live in a profile: SSH uses ssh-agent or a key file path, and any value may be given as
"$ENV_VAR" to be read from the environment at load time.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agents.spec import ADAPTIVE_DEFAULTS as ADAPTIVE
from agents.spec import DEFAULTS as SPEC  # run-control defaults live in the agent's spec, once
from harness.config import EnvStr, bounded, parse_dataclass, read_toml
from harness.errors import ConfigError, UserError
from harness.records import InterleaveUnit
from harness.metrics import METRICS
from harness.native.config import AgentFlavour, Backend, NativeConfig

PROFILE_SCHEMA = 1
DeviceClass = Literal["phone", "board", "laptop", "desktop", "server"]
TransportKind = Literal["local", "ssh", "adb"]
Runtime = Literal["onnxruntime", "litert", "llama_cpp"]
_MAX_MIB = 1 << 24  # 16 TiB: any RAM or cap above this is a typo, not a device
_DAY_S = 86400.0  # no single timeout or duration here is meant to exceed a day
_MAX_RUNS = 2**31 - 1  # "stop by time, not count" profiles use 1e9


@dataclass
class TransportConfig:
    kind: TransportKind
    python: str = "python3"  # interpreter on the device that runs the agent
    workdir: str = ""  # where edgefarm keeps agent + artifacts; default per transport
    # ssh
    host: str | None = None
    port: int = bounded(22, ge=1, le=65535, why="a TCP port")
    user: str | None = None
    identity_file: str | None = None  # path to a private key; else ssh-agent
    known_hosts: str | None = None  # default ~/.ssh/known_hosts
    trust_on_first_use: bool = False  # accept and record an unknown host key (said loudly)
    jump: str | None = None  # user@host:port of a jump host
    connect_timeout_s: float = bounded(10.0, gt=0, le=_DAY_S, why="seconds")
    # ssh and adb: a silent link is probed every keepalive_s; ~3 unanswered probes make the device lost
    keepalive_s: float = bounded(10.0, gt=0, le=_DAY_S, why="seconds")
    # adb
    serial: str | None = None
    adb_host: str = "127.0.0.1"  # the adb server (may be another farm host)
    adb_port: int = bounded(5037, ge=1, le=65535, why="a TCP port")


@dataclass
class MemoryConfig:
    cap_mib: int | None = bounded(None, gt=0, le=_MAX_MIB, why="MiB")  # emulate a low-RAM device: cgroup limit, else RLIMIT_AS


@dataclass
class RunConfig:
    """Defaults for run control; the CLI and the workload may override."""

    warmup_runs: int = bounded(SPEC.warmup_runs, ge=0, le=_MAX_RUNS)
    warmup_min_s: float = bounded(SPEC.warmup_min_s, ge=0, le=_DAY_S, why="seconds")
    min_runs: int = bounded(SPEC.min_runs, ge=1, le=_MAX_RUNS)
    min_s: float = bounded(SPEC.min_s, ge=0, le=_DAY_S, why="seconds")
    max_s: float = bounded(SPEC.max_s, gt=0, le=_DAY_S, why="seconds")
    max_runs: int = bounded(SPEC.max_runs, ge=1, le=_MAX_RUNS)  # bound on samples for sub-millisecond models
    dynamic_dims: dict[str, int] = bounded({}, ge=1, le=2**31 - 1)  # ONNX dynamic axes by name, e.g. {seq = 64}
    threads: int | None = bounded(None, ge=1, le=4096)
    backend: Backend | None = None  # cpu | gpu | nnapi | xnnpack: EP / delegate / -ngl; the record says what ran
    pin_cpus: list[int] | None = bounded(None, ge=0, le=4095)  # taskset-style pinning (big cores on big.LITTLE)
    timeout_s: float = bounded(SPEC.timeout_s, gt=0, le=_DAY_S, why="seconds")
    gguf_prompt_tokens: int = bounded(SPEC.gguf.prompt_tokens, ge=1, le=1 << 20)
    gguf_new_tokens: int = bounded(SPEC.gguf.new_tokens, ge=1, le=1 << 20)
    gguf_repetitions: int = bounded(SPEC.gguf.repetitions, ge=1, le=_MAX_RUNS)
    cooldown_margin_c: float | None = bounded(None, ge=0, le=100, why="degrees C")  # within this of idle temp
    cooldown_max_s: float = bounded(120.0, ge=0, le=_DAY_S, why="seconds")
    idle_temp_c: float | None = bounded(None, ge=-40, le=150, why="degrees C")  # None: measured at session open
    throttle_freq_fraction: float = bounded(0.85, gt=0, le=1)  # fastest usable CPU below this share of max: throttled
    adaptive_percentiles: list[float] | None = bounded(None, gt=0, le=99.999)  # e.g. [95]: measure until ...
    adaptive_rel_width: float = bounded(ADAPTIVE.rel_width, gt=0, le=10)  # ... intervals narrower than this share
    adaptive_mode: Literal["width", "decide"] = "width"  # "decide": stop when every budget is decided
    processes: int = bounded(1, ge=1, le=64)  # agent launches per cell (asv's processes): run-level evidence
    interleave_blocks: int = bounded(8, ge=2, le=64)  # --baseline-artifact: blocks per artifact, ABBA order
    interleave_unit: InterleaveUnit = "launches"  # what alternates: launches, or requests within each launch
    run_spread_pct: float | None = bounded(None, ge=0, le=100)  # recorded A/A run-to-run spread (sd of a run's
    # statistic, %): a between-run comparison must clear it (benchmarks/gate_real_aa.py --parts a measures it)


@dataclass
class EnergyConfig:
    kind: Literal["none", "rapl", "fuel_gauge", "ppk2", "scpi"] = "none"
    port: str | None = None  # serial port of an external meter
    baudrate: int | None = bounded(None, gt=0, le=100_000_000)
    voltage_v: float | None = bounded(None, gt=0, le=1000, why="volts")  # where the meter measures current only
    idle_baseline_s: float = bounded(2.0, ge=0, le=_DAY_S, why="seconds")
    mode: Literal["source", "ampere"] = "source"  # ppk2: supply the DUT at voltage_v, or sit in line with a supply
    sample_hz: float | None = bounded(None, gt=0, le=1e7)  # polling rate of scpi / rapl / fuel_gauge (default: 20 / 10 / 4)
    scpi_query: str | None = None  # reply in W (A when voltage_v is set); default MEAS:POW?, else CURR? x VOLT?
    scpi_setup: list[str] = field(default_factory=list)  # sent once before polling, e.g. ["CONF:POW"]
    scpi_terminator: str = "\n"


@dataclass
class Profile:
    name: str
    device_class: DeviceClass = dataclasses.field(metadata={"toml": "class"})
    transport: TransportConfig
    schema: int = PROFILE_SCHEMA
    description: str = ""
    os: Literal["linux", "android"] = "linux"
    ram_mib: int | None = bounded(None, gt=0, le=_MAX_MIB, why="MiB of RAM")
    runtimes: list[Runtime] = field(default_factory=lambda: ["onnxruntime", "litert", "llama_cpp"])
    tags: list[str] = field(default_factory=list)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    run: RunConfig = field(default_factory=RunConfig)
    budgets: dict[str, float] = bounded({}, ge=0)  # metric -> max (lower-better) or min (higher-better)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    agent: AgentFlavour = "python"  # "native": agents/native/agent.sh + the tools in [native]; "auto": native without Python
    native: NativeConfig = field(default_factory=NativeConfig)
    source: str = ""  # file it was loaded from (set by the loader)
    unresolved: dict[str, str] = field(default_factory=dict)  # key -> env var that was not set at load time

    def require_resolved(self) -> None:
        """Raise if a "$VAR" value could not be filled in; called before the device is used."""
        for key, var in self.unresolved.items():
            raise ConfigError(self.source, key, f"refers to environment variable {var}, which is not set",
                              hint=f"export {var}=... to use device '{self.name}'")


_UNSET = object()


def _expand_env(key: str, value: object, unresolved: dict[str, str]) -> object:
    """Fill "$VAR" values from the environment (numbers too: the key's type converts them).

    An unset one is recorded and its key left at its default: only an error once the profile is used
    (`resolve` and the transports call require_resolved), so one unconfigured phone does not stop the others.
    """
    if isinstance(value, str) and value.startswith("$") and len(value) > 1:
        var = value[1:]
        if var not in os.environ:
            unresolved[key] = var
            return _UNSET
        return EnvStr.of(os.environ[var], var)
    if isinstance(value, dict):
        out = {k: _expand_env(f"{key}.{k}" if key else k, v, unresolved) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _UNSET}
    return value


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file."""
    raw = read_toml(path)
    unresolved: dict[str, str] = {}
    data = _expand_env("", raw, unresolved)
    assert isinstance(data, dict)
    prof = parse_dataclass(path, data, Profile)
    prof.unresolved = unresolved
    if prof.schema != PROFILE_SCHEMA:
        raise ConfigError(path, "schema", f"profile schema {prof.schema} is not supported (this edgefarm: 1)")
    if prof.name != path.stem:
        raise ConfigError(path, "name", f"'{prof.name}' must match the file name '{path.stem}'")
    for metric in prof.budgets:
        if metric not in METRICS:
            raise ConfigError(path, f"budgets.{metric}", "unknown metric",
                              hint=f"known: {', '.join(sorted(METRICS))}")
    t = prof.transport
    if t.kind == "ssh" and not t.host and "transport.host" not in unresolved:
        raise ConfigError(path, "transport.host", "required for an ssh transport")
    if t.kind == "adb" and not t.serial and "transport.serial" not in unresolved:
        raise ConfigError(path, "transport.serial", "required for an adb transport")
    _check_cross(path, prof)
    prof.source = str(path)
    return prof


def host_ram_mib() -> int | None:
    """This machine's physical RAM, for checking a local memory cap."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return None


def _check_cross(path: Path, prof: Profile) -> None:
    """Checks that involve more than one key (single numbers are range-checked by their fields)."""
    r = prof.run
    if r.min_runs > r.max_runs:
        raise ConfigError(path, "run.min_runs", f"{r.min_runs} is more than run.max_runs = {r.max_runs}")
    if r.min_s > r.max_s:
        raise ConfigError(path, "run.min_s", f"{r.min_s:g} s is more than run.max_s = {r.max_s:g} s")
    if r.adaptive_mode == "decide" and r.processes > 1:
        raise ConfigError(path, "run.adaptive_mode", f'"decide" stops one launch on its budgets; run.processes = '
                                                     f"{r.processes} combines launches afterwards: use one of them")
    cap = prof.memory.cap_mib
    if cap is not None and prof.ram_mib is not None and cap > prof.ram_mib:
        raise ConfigError(path, "memory.cap_mib", f"{cap} MiB is more than the device's ram_mib = {prof.ram_mib}",
                          hint="a cap above the RAM caps nothing")
    host = host_ram_mib()
    if cap is not None and prof.transport.kind == "local" and host is not None and cap > host:
        raise ConfigError(path, "memory.cap_mib", f"{cap} MiB is more than this machine's RAM ({host} MiB)",
                          hint="a cap above the RAM caps nothing")


def default_profiles_dir() -> Path:
    """$EDGEFARM_PROFILES, else ./device_profiles, else the one beside the installed package."""
    env = os.environ.get("EDGEFARM_PROFILES")
    if env:
        return Path(env)
    here = Path.cwd() / "device_profiles"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "device_profiles"


def load_all(directory: Path | None = None) -> dict[str, Profile]:
    """Every profile in a directory, by name."""
    d = directory or default_profiles_dir()
    if not d.is_dir():
        raise UserError(f"no device profile directory at {d}", hint="set EDGEFARM_PROFILES or pass --profiles")
    return {p.stem: load_profile(p) for p in sorted(d.glob("*.toml"))}


def resolve(names: list[str], directory: Path | None = None) -> list[Profile]:
    """Profiles for the names given on a command line; 'all' means every profile."""
    profiles = load_all(directory)
    if names == ["all"] or "all" in names:
        names = list(profiles)
    out: list[Profile] = []
    for n in names:
        if n not in profiles:
            raise UserError(f"unknown device '{n}'", hint=f"known devices: {', '.join(sorted(profiles)) or 'none'}")
        out.append(profiles[n])
    for p in out:  # a requested device whose "$VAR" is unset: one line now, not a failure in a worker later
        p.require_resolved()
    return out
