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
from harness.config import parse_dataclass, read_toml
from harness.errors import ConfigError, UserError
from harness.metrics import METRICS

PROFILE_SCHEMA = 1
DeviceClass = Literal["phone", "board", "laptop", "desktop", "server"]
TransportKind = Literal["local", "ssh", "adb"]
Runtime = Literal["onnxruntime", "litert", "llama_cpp"]


@dataclass
class TransportConfig:
    kind: TransportKind
    python: str = "python3"  # interpreter on the device that runs the agent
    workdir: str = ""  # where edgefarm keeps agent + artifacts; default per transport
    # ssh
    host: str | None = None
    port: int = 22
    user: str | None = None
    identity_file: str | None = None  # path to a private key; else ssh-agent
    known_hosts: str | None = None  # default ~/.ssh/known_hosts
    trust_on_first_use: bool = False  # accept and record an unknown host key (said loudly)
    jump: str | None = None  # user@host:port of a jump host
    connect_timeout_s: float = 10.0
    # ssh and adb: a silent link is probed every keepalive_s; ~3 unanswered probes make the device lost
    keepalive_s: float = 10.0
    # adb
    serial: str | None = None
    adb_host: str = "127.0.0.1"  # the adb server (may be another farm host)
    adb_port: int = 5037


@dataclass
class MemoryConfig:
    cap_mib: int | None = None  # emulate a low-RAM device: cgroup limit, else RLIMIT_AS


@dataclass
class RunConfig:
    """Defaults for run control; the CLI and the workload may override."""

    warmup_runs: int = SPEC.warmup_runs
    warmup_min_s: float = SPEC.warmup_min_s
    min_runs: int = SPEC.min_runs
    min_s: float = SPEC.min_s
    max_s: float = SPEC.max_s
    max_runs: int = SPEC.max_runs  # bound on samples for sub-millisecond models (min_s would otherwise make 100k+)
    dynamic_dims: dict[str, int] = field(default_factory=dict)  # ONNX dynamic axes by name, e.g. {seq = 64}
    threads: int | None = None
    pin_cpus: list[int] | None = None  # taskset-style pinning (big cores on big.LITTLE)
    timeout_s: float = SPEC.timeout_s
    gguf_prompt_tokens: int = SPEC.gguf.prompt_tokens
    gguf_new_tokens: int = SPEC.gguf.new_tokens
    gguf_repetitions: int = SPEC.gguf.repetitions
    cooldown_margin_c: float | None = None  # wait until within this of idle temperature before measuring
    cooldown_max_s: float = 120.0
    idle_temp_c: float | None = None  # the device's idle temperature; None: measured when a session opens
    throttle_freq_fraction: float = 0.85  # the fastest usable CPU below this share of its max: throttled
    adaptive_percentiles: list[float] | None = None  # e.g. [95]: measure until these percentiles' intervals ...
    adaptive_rel_width: float = ADAPTIVE.rel_width  # ... are narrower than this share of their value (bounded by max_s)


@dataclass
class EnergyConfig:
    kind: Literal["none", "rapl", "fuel_gauge", "ppk2", "scpi"] = "none"
    port: str | None = None  # serial port of an external meter
    baudrate: int | None = None
    voltage_v: float | None = None  # supply voltage where the meter measures current only
    idle_baseline_s: float = 2.0
    mode: Literal["source", "ampere"] = "source"  # ppk2: supply the DUT at voltage_v, or sit in line with a supply
    sample_hz: float | None = None  # polling rate of scpi / rapl / fuel_gauge (default: 20 / 10 / 4)
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
    ram_mib: int | None = None
    runtimes: list[Runtime] = field(default_factory=lambda: ["onnxruntime", "litert", "llama_cpp"])
    tags: list[str] = field(default_factory=list)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    run: RunConfig = field(default_factory=RunConfig)
    budgets: dict[str, float] = field(default_factory=dict)  # metric -> max (lower-better) or min (higher-better)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    source: str = ""  # file it was loaded from (set by the loader)
    unresolved: dict[str, str] = field(default_factory=dict)  # key -> env var that was not set at load time

    def require_resolved(self) -> None:
        """Raise if a "$VAR" value could not be filled in; called before the device is used."""
        for key, var in self.unresolved.items():
            raise ConfigError(self.source, key, f"refers to environment variable {var}, which is not set",
                              hint=f"export {var}=... to use device '{self.name}'")


def _expand_env(key: str, value: object, unresolved: dict[str, str]) -> object:
    """Fill "$VAR" values from the environment; an unset one is recorded, and only an error once used."""
    if isinstance(value, str) and value.startswith("$") and len(value) > 1:
        var = value[1:]
        if var not in os.environ:
            unresolved[key] = var
            return value
        return os.environ[var]
    if isinstance(value, dict):
        return {k: _expand_env(f"{key}.{k}" if key else k, v, unresolved) for k, v in value.items()}
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
    if t.kind == "ssh" and not t.host:
        raise ConfigError(path, "transport.host", "required for an ssh transport")
    if t.kind == "adb" and not t.serial:
        raise ConfigError(path, "transport.serial", "required for an adb transport")
    if prof.memory.cap_mib is not None and prof.memory.cap_mib <= 0:
        raise ConfigError(path, "memory.cap_mib", "must be a positive number of MiB")
    if prof.run.adaptive_percentiles is not None and not all(0 < p < 100 for p in prof.run.adaptive_percentiles):
        raise ConfigError(path, "run.adaptive_percentiles", "expected percentiles in (0, 100), e.g. [95]")
    if prof.run.adaptive_rel_width <= 0:
        raise ConfigError(path, "run.adaptive_rel_width", "must be > 0 (0.05: the interval 5% of the value)")
    if not 0.0 < prof.run.throttle_freq_fraction <= 1.0:
        raise ConfigError(path, "run.throttle_freq_fraction", "must be in (0, 1]")
    if prof.run.cooldown_margin_c is not None and prof.run.cooldown_margin_c < 0:
        raise ConfigError(path, "run.cooldown_margin_c", "must be >= 0 degrees C")
    prof.source = str(path)
    return prof


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
        return list(profiles.values())
    out: list[Profile] = []
    for n in names:
        if n not in profiles:
            raise UserError(f"unknown device '{n}'", hint=f"known devices: {', '.join(sorted(profiles)) or 'none'}")
        out.append(profiles[n])
    return out
