"""The profile's `agent` flavour and `[native]` section: where a device's benchmark tools come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AgentFlavour = Literal["python", "native", "auto"]  # auto: Python when the device has one, else native
Backend = Literal["cpu", "gpu", "nnapi", "xnnpack"]  # agents/spec.py BACKENDS (profile [run] backend, --backend)
DEVICE_PREFIX = "device:"  # a tool or library path already on the device (not pushed)


@dataclass
class NativeConfig:
    """Tool binaries and shared libraries for the native flavour.

    A path is a file on the controller (pushed content-addressed, made executable) or `device:/path` for one
    already on the device. `libs` are files or directories of shared libraries (every `*.so*` in them), pushed
    and put on the tool's LD_LIBRARY_PATH under their own names.
    """

    shell: str = "sh"  # the device's POSIX shell (Android: /system/bin/sh, mksh)
    llama_bench: str | None = None
    benchmark_model: str | None = None  # LiteRT's (experimental adapter)
    onnxruntime_perf_test: str | None = None  # (experimental adapter)
    libs: list[str] = field(default_factory=list)
    wrapper: list[str] = field(default_factory=list)  # argv prefix on the device, e.g. ["qemu-aarch64", "-L", ROOT]
    gpu_layers: int = 999  # llama.cpp layers offloaded when backend = "gpu"
    poll_s: float = 0.1  # how often the agent reads the tool's VmHWM and stderr
