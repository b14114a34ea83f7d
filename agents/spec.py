"""WorkloadSpec: what the agent is asked to measure. Its defaults are the only defaults (harness imports them).

Strict: an unknown key, a wrong type (a bool is not a number), a NaN or infinite number, or a value out of
range is a SpecError naming the key. `to_dict` gives every key (defaults filled): the agent echoes it in its
result, and the record stores that echo as its `workload`.
"""

from __future__ import annotations

import json
import math
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

from agents.fields import Fields, _copy
from agents.formats import FORMATS
from agents.protocol import Json


# Accelerators a run may ask for: onnxruntime execution providers, LiteRT delegates, llama.cpp GPU offload.
BACKENDS = ("cpu", "gpu", "nnapi", "xnnpack")


class SpecError(Exception):
    """The spec is malformed: the agent prints an error event and exits 2."""


class GgufSpec(Fields):
    """A request: prompt_tokens evaluated as one batch, then new_tokens decoded one at a time."""

    prompt_tokens: int = 64
    new_tokens: int = 64
    repetitions: int = 5  # requests measured (plays the part of min_runs)
    n_ctx: int = 512
    prompt: Optional[str] = None  # null: BOS then seeded random token ids (llama-bench style)


class GatedSpec(Fields):
    """A statistic the gate judges against a budget (mode "decide"): agents.stats' (series, kind, p)."""

    metric: str = ""  # the gate's metric name (latency_ms_p95), for the record
    series: str = "latency_ms"  # the sample series: latency_ms, or a GGUF series (ttft_ms, itl_ms, ...)
    kind: str = "quantile"  # quantile | mean | rate (agents.stats.KINDS)
    p: float = 0.5  # the quantile in (0, 1) when kind is quantile
    limit: float = 0.0  # the budget
    lower_is_better: bool = True  # true: a `max` budget; false: a `min` budget
    per_run: int = 1  # samples of the series each run adds (GGUF itl_ms: new_tokens - 1): sets the first look


ADAPTIVE_MODES = ("width", "decide")


class AdaptiveSpec(Fields):
    """mode "width": measure until every listed percentile's interval is narrower than rel_width x its value.
    mode "decide": until every gated statistic's interval lies on one side of its budget (agents/sequential.py:
    at most `looks` looks on a geometric schedule of ratio `growth`)."""

    mode: str = "width"
    percentiles: List[float] = [95.0]  # (defaults are copied per instance)
    rel_width: float = 0.05
    gated: List[GatedSpec] = []
    looks: int = 8
    growth: float = 2.0


class AlternateSpec(Fields):
    """A second model measured in the same process, requests alternating with the first's in turns of `every`
    (A..A B..B, B..B A..A, ...): an interleaved A/B session's unit when `--interleave requests`. Both models are
    resident, so the process's memory figures belong to neither and are not reported."""

    artifact: str = ""
    format: Optional[str] = None
    artifact_sha256: Optional[str] = None
    every: int = 1  # requests per turn


class WorkloadSpec(Fields):
    """Run control for one artifact (agents/README.md, "Spec")."""

    artifact: str = ""
    format: Optional[str] = None
    artifact_sha256: Optional[str] = None  # expected: the model process refuses other bytes
    warmup_runs: int = 1
    warmup_min_s: float = 0.5
    min_runs: int = 50
    min_s: float = 1.0
    max_s: float = 150.0
    max_runs: int = 20000  # bound on samples for sub-millisecond models
    threads: Optional[int] = None
    seed: int = 0
    timeout_s: float = 900.0
    pin_cpus: Optional[List[int]] = None
    rlimit_as_mib: Optional[float] = None
    dynamic_dims: Dict[str, int] = {}
    input_shapes: Dict[str, List[int]] = {}
    confidence: float = 0.95
    reset_hwm: bool = True
    backend: Optional[str] = None  # accelerator asked for (BACKENDS); null: the runtime's default CPU path
    gguf: GgufSpec = GgufSpec()
    adaptive: Optional[AdaptiveSpec] = None
    alternate: Optional[AlternateSpec] = None

    def to_dict(self) -> Json:
        """Every key, defaults filled, as JSON-ready values."""
        return self.as_dict()

    @classmethod
    def from_dict(cls, given: Any, where: str = "spec") -> "WorkloadSpec":
        """Validated spec from a JSON object; SpecError naming the key otherwise."""
        vals = _typed(given, cls, where)
        g = vals.get("gguf")
        vals["gguf"] = GgufSpec(**_typed(g, GgufSpec, where + ".gguf")) if g is not None else GgufSpec()
        a = vals.get("adaptive")
        if a is not None:
            a = _typed(a, AdaptiveSpec, where + ".adaptive")
            a["gated"] = [GatedSpec(**_typed(g, GatedSpec, "%s.adaptive.gated[%d]" % (where, i)))
                          for i, g in enumerate(a.get("gated", []))]
        vals["adaptive"] = None if a is None else AdaptiveSpec(**a)
        alt = vals.get("alternate")
        vals["alternate"] = None if alt is None else AlternateSpec(**_typed(alt, AlternateSpec, where + ".alternate"))
        spec = cls(**vals)
        spec.check(where)
        return spec

    def check(self, where: str = "spec") -> None:
        """Ranges and cross-field rules (types were checked by from_dict)."""
        def bad(key: str, why: str) -> SpecError:
            return SpecError("%s.%s: %s" % (where, key, why))

        if not self.artifact:
            raise bad("artifact", "missing (path of the model file on this device)")
        if self.format is not None and self.format not in FORMATS:
            raise bad("format", "%r is not one of %s or null" % (self.format, ", ".join(FORMATS)))
        sha = self.artifact_sha256
        if sha is not None and not _is_sha256(sha):
            raise bad("artifact_sha256", "expected 64 lowercase hex digits, got %r" % sha)
        if not 0.5 <= self.confidence < 1.0:
            raise bad("confidence", "%r must be in [0.5, 1)" % self.confidence)
        for k in ("warmup_runs", "min_runs", "seed", "warmup_min_s", "min_s"):
            if getattr(self, k) < 0:
                raise bad(k, "must be >= 0, got %r" % getattr(self, k))
        for k in ("max_runs", "max_s", "timeout_s"):
            if getattr(self, k) <= 0:
                raise bad(k, "must be > 0, got %r" % getattr(self, k))
        if self.backend is not None and self.backend not in BACKENDS:
            raise bad("backend", "%r is not one of %s or null" % (self.backend, ", ".join(BACKENDS)))
        if self.threads is not None and self.threads < 1:
            raise bad("threads", "must be >= 1 or null (the runtime's default)")
        if self.rlimit_as_mib is not None and self.rlimit_as_mib <= 0:
            raise bad("rlimit_as_mib", "must be > 0 or null")
        if self.pin_cpus is not None and (not self.pin_cpus or min(self.pin_cpus) < 0):
            raise bad("pin_cpus", "expected a non-empty list of CPU numbers >= 0, or null")
        for name, v in self.dynamic_dims.items():
            if v < 1:
                raise bad("dynamic_dims." + name, "expected a positive int, got %r" % v)
        for name, shape in self.input_shapes.items():
            if any(d < 1 for d in shape):
                raise bad("input_shapes." + name, "expected a list of positive ints, got %r" % shape)
        g = self.gguf
        if g.prompt_tokens < 1 or g.new_tokens < 2 or g.repetitions < 1:
            raise SpecError("%s.gguf: prompt_tokens >= 1, new_tokens >= 2 and repetitions >= 1 are required" % where)
        if g.prompt_tokens + g.new_tokens > g.n_ctx:
            raise SpecError("%s.gguf: prompt_tokens + new_tokens (%d) exceeds n_ctx (%d)"
                            % (where, g.prompt_tokens + g.new_tokens, g.n_ctx))
        a = self.adaptive
        if a is not None:
            if not a.percentiles or not all(0 < p < 100 for p in a.percentiles):
                raise SpecError("%s.adaptive.percentiles: expected a non-empty list of percentiles in (0, 100)" % where)
            if a.rel_width <= 0:
                raise SpecError("%s.adaptive.rel_width: must be > 0 (e.g. 0.05: interval width 5%% of the value)"
                                % where)
            _check_decide(a, where + ".adaptive")
        alt = self.alternate
        if alt is not None:
            if not alt.artifact:
                raise bad("alternate.artifact", "missing (path of the second model file on this device)")
            if alt.format is not None and alt.format not in FORMATS:
                raise bad("alternate.format", "%r is not one of %s or null" % (alt.format, ", ".join(FORMATS)))
            if alt.artifact_sha256 is not None and not _is_sha256(alt.artifact_sha256):
                raise bad("alternate.artifact_sha256", "expected 64 lowercase hex digits, got %r" % alt.artifact_sha256)
            if alt.every < 1:
                raise bad("alternate.every", "requests per turn, >= 1, got %r" % alt.every)
            if a is not None:
                raise bad("alternate", "alternating requests use fixed counts: drop `adaptive`")


def _is_sha256(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdef" for c in s)


def _check_decide(a: AdaptiveSpec, where: str) -> None:
    if a.mode not in ADAPTIVE_MODES:
        raise SpecError("%s.mode: %r is not one of %s" % (where, a.mode, ", ".join(ADAPTIVE_MODES)))
    if not 1 <= a.looks <= 64:
        raise SpecError("%s.looks: expected 1..64 looks, got %r" % (where, a.looks))
    if not 1.05 <= a.growth <= 100:
        raise SpecError("%s.growth: expected a ratio in [1.05, 100], got %r" % (where, a.growth))
    if a.mode == "decide" and not a.gated:
        raise SpecError("%s.gated: mode decide needs at least one gated statistic (a budget to decide on)" % where)
    for i, g in enumerate(a.gated):
        at = "%s.gated[%d]" % (where, i)
        if g.kind not in ("quantile", "mean", "rate"):
            raise SpecError("%s.kind: %r is not one of quantile, mean, rate" % (at, g.kind))
        if g.kind == "quantile" and not 0.0 < g.p < 1.0:
            raise SpecError("%s.p: a quantile in (0, 1), got %r" % (at, g.p))
        if not g.series:
            raise SpecError("%s.series: missing (the sample series, e.g. latency_ms)" % at)
        if g.per_run < 1:
            raise SpecError("%s.per_run: samples per run, >= 1, got %r" % (at, g.per_run))


DEFAULTS = WorkloadSpec()  # the defaults, for the harness (profiles) to import
GGUF_DEFAULTS = GgufSpec()
ADAPTIVE_DEFAULTS = AdaptiveSpec()
ALTERNATE_DEFAULTS = AlternateSpec()

# key -> (kind, null allowed); kinds are checked by _value
_KINDS: Dict[str, Any] = {
    "artifact": ("str", False), "format": ("str", True), "artifact_sha256": ("str", True),
    "warmup_runs": ("int", False), "warmup_min_s": ("num", False), "min_runs": ("int", False),
    "min_s": ("num", False), "max_s": ("num", False), "max_runs": ("int", False), "threads": ("int", True),
    "seed": ("int", False), "timeout_s": ("num", False), "pin_cpus": ("ints", True), "rlimit_as_mib": ("num", True),
    "dynamic_dims": ("dims", False), "input_shapes": ("shapes", False), "confidence": ("num", False),
    "reset_hwm": ("bool", False), "backend": ("str", True), "gguf": ("obj", True), "adaptive": ("obj", True),
    "alternate": ("obj", True), "every": ("int", False),
    "prompt_tokens": ("int", False), "new_tokens": ("int", False), "repetitions": ("int", False),
    "n_ctx": ("int", False), "prompt": ("str", True), "percentiles": ("nums", False), "rel_width": ("num", False),
    "mode": ("str", False), "gated": ("objs", False), "looks": ("int", False), "growth": ("num", False),
    "metric": ("str", False), "series": ("str", False), "kind": ("str", False), "p": ("num", False),
    "limit": ("num", False), "lower_is_better": ("bool", False), "per_run": ("int", False),
}
_EXPECT = {"str": "a string", "int": "an integer", "num": "a finite number", "bool": "true or false",
           "ints": "a list of integers", "nums": "a list of finite numbers", "dims": "an object of name: integer",
           "shapes": "an object of name: list of integers", "obj": "an object", "objs": "a list of objects"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _value(kind: str, v: Any) -> bool:
    if kind == "str":
        return isinstance(v, str)
    if kind == "int":
        return _is_int(v)
    if kind == "num":
        return _is_num(v)
    if kind == "bool":
        return isinstance(v, bool)
    if kind in ("ints", "nums"):
        return isinstance(v, list) and all((_is_int if kind == "ints" else _is_num)(x) for x in v)
    if kind == "dims":
        return isinstance(v, dict) and all(_is_int(x) for x in v.values())
    if kind == "shapes":
        return isinstance(v, dict) and all(_value("ints", x) for x in v.values())
    if kind == "objs":
        return isinstance(v, list) and all(isinstance(x, dict) for x in v)
    return isinstance(v, dict)


def _typed(given: Any, cls: Any, where: str) -> Dict[str, Any]:
    if not isinstance(given, dict):
        raise SpecError("%s: expected a JSON object, got %s" % (where, type(given).__name__))
    known = cls.field_names()
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SpecError("%s: unknown key(s) %s; known: %s" % (where, ", ".join(unknown), ", ".join(sorted(known))))
    out: Dict[str, Any] = {}
    for k, v in given.items():
        kind, nullable = _KINDS[k]
        if v is None and nullable:
            out[k] = None
            continue
        if kind in ("dims", "shapes") and isinstance(v, dict):  # name the entry at fault
            for name, x in v.items():
                if not _value("int" if kind == "dims" else "ints", x):
                    raise SpecError("%s.%s.%s: expected %s, got %s" % (
                        where, k, name, "a positive integer" if kind == "dims" else "a list of positive integers",
                        _show(x)))
        if not _value(kind, v):
            nan = isinstance(v, float) and not math.isfinite(v)
            raise SpecError("%s.%s: expected %s%s, got %s" % (where, k, _EXPECT[kind], " or null" if nullable else "",
                                                            repr(v) if nan else _show(v)))
        out[k] = float(v) if kind == "num" else [float(x) for x in v] if kind == "nums" else _copy(v)
    return out


def _show(v: Any) -> str:
    try:
        return json.dumps(v)[:80]
    except ValueError:
        return repr(v)[:80]


def parse_spec(raw: str) -> WorkloadSpec:
    """Spec from a JSON string, a file path, or `-` (stdin); validated, with defaults filled in."""
    text = raw
    if raw == "-":
        text = sys.stdin.read()
    elif not raw.lstrip().startswith("{"):
        try:
            with open(raw) as fh:
                text = fh.read()
        except OSError as e:
            raise SpecError("spec %s: cannot read (%s)" % (raw, e.strerror or e)) from None
    try:
        given = json.loads(text)
    except ValueError as e:
        raise SpecError("spec is not valid JSON: %s" % e) from None
    return WorkloadSpec.from_dict(given)
