"""The benchmark tools the native agent drives, one entry per artifact format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agents.spec import WorkloadSpec
from harness.native import litert, llama_bench, ort_perf
from harness.native.config import NativeConfig
from harness.native.parsed import Parsed

ArgvFn = Callable[[str, WorkloadSpec, int, NativeConfig], list[str]]
ParseFn = Callable[[list[str], list[str], WorkloadSpec, NativeConfig], Parsed]


@dataclass(frozen=True)
class Tool:
    key: str  # the [native] key naming its path
    binary: str  # its usual file name
    format: str  # the artifact format it measures
    runtime_key: str  # the probe's runtime name (what devicecheck.blockers looks for)
    experimental: bool  # its adapter was not run against the real tool here
    build: str  # how to get it (printed by `edgefarm devices` when it is missing)
    argv: ArgvFn
    parse: ParseFn
    phases: tuple[tuple[str, str], ...]  # (phase, stderr glob) in order
    run_glob: str  # stderr glob of one measured run starting (progress events)
    keep_stderr: int = 80  # stderr lines the agent sends back (the parser may need its summary there)


LLAMA_BENCH = Tool(
    key="llama_bench", binary="llama-bench", format="gguf", runtime_key="llama_cpp", experimental=False,
    build=("ci/build_llama_tools.sh (host) or `ci/build_llama_tools.sh aarch64` (boards); for Android: the NDK "
           "cmake lines in llama.cpp's docs/android.md: cmake -DCMAKE_TOOLCHAIN_FILE=$ANDROID_NDK/build/cmake/"
           "android.toolchain.cmake -DANDROID_ABI=arm64-v8a -DANDROID_PLATFORM=android-28 -DGGML_OPENMP=OFF "
           "-DGGML_LLAMAFILE=OFF -DLLAMA_CURL=OFF -B build-android && cmake --build build-android --target "
           "llama-bench; then [native] llama_bench = \"build-android/bin/llama-bench\", libs = [\"build-android/bin\"]"),
    argv=llama_bench.argv, parse=llama_bench.parse, phases=llama_bench.PHASES, run_glob=llama_bench.RUN_GLOB,
)

BENCHMARK_MODEL = Tool(
    key="benchmark_model", binary="benchmark_model", format="tflite", runtime_key="ai_edge_litert", experimental=True,
    build=("LiteRT's documented build: bazel build -c opt --config=android_arm64 //tflite/tools/benchmark:"
           "benchmark_model (or TensorFlow's //tensorflow/lite/tools/benchmark:benchmark_model), or the prebuilt "
           "android_aarch64_benchmark_model from the LiteRT releases page; no registry ships it"),
    argv=litert.argv, parse=litert.parse, phases=litert.PHASES, run_glob=litert.RUN_GLOB, keep_stderr=400,
)
ORT_PERF_TEST = Tool(
    key="onnxruntime_perf_test", binary="onnxruntime_perf_test", format="onnx", runtime_key="onnxruntime",
    experimental=True,
    build=("onnxruntime's documented build: ./build.sh --config Release --build_shared_lib --parallel "
           "(--android --android_abi arm64-v8a --android_api 29 --android_sdk_path ... --android_ndk_path ... "
           "[--use_nnapi] for phones); the tool is build/<config>/onnxruntime_perf_test; no registry ships it"),
    argv=ort_perf.argv, parse=ort_perf.parse, phases=ort_perf.PHASES, run_glob=ort_perf.RUN_GLOB, keep_stderr=200,
)

TOOLS: dict[str, Tool] = {t.format: t for t in (LLAMA_BENCH, BENCHMARK_MODEL, ORT_PERF_TEST)}


def tool_for(fmt: str) -> Tool | None:
    return TOOLS.get(fmt)


def configured_path(cfg: NativeConfig, tool: Tool) -> str | None:
    value = getattr(cfg, tool.key)
    return value if isinstance(value, str) and value else None
