"""The metrics edgefarm reports: one place that names each, with its unit, direction and definition.

The agent emits these names; the gate only accepts these names; reports print these definitions.
A percentile is linearly interpolated between closest ranks (Hyndman-Fan type 7, numpy's default) and is
only claimed when the sample count reaches `min_samples_for_percentile` (see agents/stats.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    unit: str
    better: Direction
    definition: str
    sampled_from: str | None = None  # name of the raw-sample series it is computed from, if any


def _d(name: str, unit: str, better: Direction, definition: str, sampled_from: str | None = None) -> MetricDef:
    return MetricDef(name, unit, better, definition, sampled_from)


_PCTS = (50, 90, 95, 99)

_BASE: list[MetricDef] = [
    _d("load_time_ms", "ms", "lower",
       "Wall time (monotonic clock) from the start of model construction to a model ready to run: "
       "ort.InferenceSession(...), Interpreter(...)+allocate_tensors(), Llama(...)."),
    _d("load_footprint_mib", "MiB", "lower",
       "VmRSS of the measuring process after load minus VmRSS just before load (resident memory the load added)."),
    _d("peak_rss_mib", "MiB", "lower",
       "Peak resident memory of the model process over the whole run: the larger of the load-phase and "
       "inference-phase VmHWM (the kernel's high-water mark). Without the clear_refs reset it equals wait4()'s "
       "ru_maxrss for that process; with it, ru_maxrss equals peak_rss_inference_mib "
       "(provenance.os_peak_rss_equals names which)."),
    _d("peak_rss_load_mib", "MiB", "lower",
       "VmHWM read right after load (the load phase's peak)."),
    _d("peak_rss_inference_mib", "MiB", "lower",
       "VmHWM over the inference phases only: the high-water mark is reset (clear_refs 5) after load; "
       "absent where /proc/self/clear_refs is not writable."),
    _d("rss_anon_mib", "MiB", "lower",
       "RssAnon after the measured runs: anonymous (non-evictable) resident memory."),
    _d("rss_file_mib", "MiB", "lower",
       "RssFile after the measured runs: file-backed resident memory (mmapped weights), evictable page cache."),
    _d("first_inference_ms", "ms", "lower",
       "Latency of the first (cold) inference after load, before any warmup."),
    _d("latency_ms_mean", "ms", "lower", "Arithmetic mean of the warm latency samples.", "latency_ms"),
    _d("latency_ms_std", "ms", "lower", "Sample standard deviation (n-1) of the warm latency samples.", "latency_ms"),
    _d("latency_ms_min", "ms", "lower", "Smallest warm latency sample.", "latency_ms"),
    _d("latency_ms_max", "ms", "lower", "Largest warm latency sample.", "latency_ms"),
    _d("throughput_per_s", "1/s", "higher",
       "Measured inferences divided by the wall time of the measured phase (sequential, batch as given)."),
    _d("ttft_ms", "ms", "lower",
       "GGUF: time to first token: prompt evaluation plus the first sampled token, median over repetitions."),
    _d("prefill_tokens_per_s", "tok/s", "higher",
       "GGUF: prompt tokens divided by prompt-evaluation time (llama-bench's pp), mean over repetitions."),
    _d("decode_tokens_per_s", "tok/s", "higher",
       "GGUF: generated tokens after the first divided by their generation time (llama-bench's tg), "
       "mean over repetitions."),
    _d("tpot_ms", "ms", "lower",
       "GGUF: time per output token: mean decode time per generated token after the first."),
    _d("energy_j_per_inference", "J", "lower",
       "Energy of the measured phase minus the idle baseline power times its duration, per inference."),
    _d("energy_j_per_token", "J", "lower",
       "GGUF: energy of the measured phase minus idle baseline, per generated token."),
    _d("power_w_avg", "W", "lower", "Mean power over the measured phase (idle baseline not subtracted)."),
    _d("power_w_peak", "W", "lower", "Largest power sample over the measured phase."),
    _d("memory_headroom_pct", "%", "higher",
       "Share of the device's RAM left free at the run's peak: 100 * (ram - peak_rss) / ram."),
]

_PCT_DEFS: list[MetricDef] = []
for _series, _label in (("latency_ms", "warm latency"), ("itl_ms", "GGUF inter-token latency (decode)")):
    for _p in _PCTS:
        _PCT_DEFS.append(_d(
            f"{_series}_p{_p}", "ms", "lower",
            f"{_p}th percentile of {_label} samples, type-7 interpolation, with a distribution-free "
            f"(binomial order-statistic) confidence interval; not claimed below the minimum sample count.",
            _series,
        ))

METRICS: dict[str, MetricDef] = {m.name: m for m in _BASE + _PCT_DEFS}

SAMPLE_SERIES: dict[str, str] = {
    "latency_ms": "Warm latency per inference (ms), one per measured run, in run order.",
    "itl_ms": "GGUF: inter-token latency (ms) of each decoded token after the first, all repetitions.",
    "ttft_ms": "GGUF: time to first token (ms), one per repetition.",
    "prefill_tokens_per_s": "GGUF: prompt-processing rate per repetition.",
    "decode_tokens_per_s": "GGUF: decode rate per repetition.",
}


def metric(name: str) -> MetricDef:
    """Look a metric up by name; KeyError lists nothing, callers turn it into a ConfigError."""
    return METRICS[name]


def memory_headroom_pct(ram_mib: float | None, peak_mib: float | None) -> float | None:
    """The one definition of memory headroom: % of the device's RAM left free at the run's peak (None: unknown)."""
    if peak_mib is None or not ram_mib or ram_mib <= 0:
        return None
    return 100.0 * (ram_mib - peak_mib) / ram_mib
