#!/usr/bin/env python3
"""edgefarm agent: the one file pushed to a device. Workload spec in, one JSON result out.

Standard library only, plus the runtime it measures (imported lazily, in the model process only).
Runs on Python >= 3.8. The protocol (commands, spec keys, events, result fields) is agents/README.md;
metric names and definitions are harness/metrics.py (this file must not import it).

The model runs in a child process (`agent.py _child FD SPEC`), so a runtime that aborts or is killed
gives a result with status `crashed`/`oom`/`timeout` instead of a dead agent.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import platform
import re
import select
import signal
import struct
import subprocess
import sys
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

AGENT_VERSION = "1"
Json = Dict[str, Any]
MIB = 1024.0 * 1024.0
PERCENTILES = (50, 90, 95, 99)
PERCENTILE_METHOD = ("linear interpolation between closest ranks (Hyndman-Fan type 7); interval: "
                     "distribution-free binomial order statistics, equal tails")

GGUF_DEFAULTS: Json = {"prompt_tokens": 64, "new_tokens": 64, "repetitions": 5, "n_ctx": 512, "prompt": None}
SPEC_DEFAULTS: Json = {
    "artifact": None, "format": None,
    "warmup_runs": 1, "warmup_min_s": 0.5, "min_runs": 50, "min_s": 1.0, "max_s": 150.0, "max_runs": 20000,
    "threads": None, "seed": 0, "timeout_s": 900.0, "pin_cpus": None, "rlimit_as_mib": None,
    "dynamic_dims": {}, "input_shapes": {}, "confidence": 0.95, "reset_hwm": True,
    "gguf": GGUF_DEFAULTS, "adaptive": None,
}
ADAPTIVE_DEFAULTS: Json = {"percentiles": [95], "rel_width": 0.05}
_NUM = (int, float)
_SPEC_TYPES: Dict[str, Tuple[Tuple[type, ...], bool]] = {  # key: (accepted types, null allowed)
    "artifact": ((str,), False), "format": ((str,), True),
    "warmup_runs": ((int,), False), "warmup_min_s": (_NUM, False), "min_runs": ((int,), False),
    "max_runs": ((int,), False), "min_s": (_NUM, False), "max_s": (_NUM, False), "threads": ((int,), True), "seed": ((int,), False),
    "timeout_s": (_NUM, False), "pin_cpus": ((list,), True), "rlimit_as_mib": (_NUM, True),
    "dynamic_dims": ((dict,), False), "input_shapes": ((dict,), False), "confidence": (_NUM, False),
    "reset_hwm": ((bool,), False), "gguf": ((dict,), False), "adaptive": ((dict,), True),
}
_ADAPTIVE_TYPES: Dict[str, Tuple[Tuple[type, ...], bool]] = {"percentiles": ((list,), False), "rel_width": (_NUM, False)}
_GGUF_TYPES: Dict[str, Tuple[Tuple[type, ...], bool]] = {
    "prompt_tokens": ((int,), False), "new_tokens": ((int,), False), "repetitions": ((int,), False),
    "n_ctx": ((int,), False), "prompt": ((str,), True),
}
FORMATS = ("onnx", "tflite", "gguf")


class SpecError(Exception):
    """The spec is malformed: the agent prints an error event and exits non-zero."""


class ArtifactError(Exception):
    """The artifact is unreadable, of no known format, or truncated: a result with status error."""


# --------------------------------------------------------------------------------------------- output

def emit(obj: Json, fh: Optional[IO[str]] = None) -> None:
    """Write one JSON line and flush at once (a controller aligns its clock on these)."""
    out = fh if fh is not None else sys.stdout
    out.write(json.dumps(obj, sort_keys=True, allow_nan=False) + "\n")
    out.flush()


def _finite(x: Optional[float], nd: int = 4) -> Optional[float]:
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    return round(float(x), nd)


# ----------------------------------------------------------------------------------------- statistics
# Small pure functions: percentiles, binomial order-statistic intervals, t-intervals. Adaptive stopping
# is meant to be built on these (min_samples_for_percentile says how many runs a claim needs).

def percentile_type7(sorted_xs: Sequence[float], p: float) -> float:
    """The p-quantile (0 <= p <= 1) of sorted data, linear between closest ranks (type 7, numpy default)."""
    n = len(sorted_xs)
    if n == 0:
        raise ValueError("no samples")
    h = (n - 1) * p
    lo = int(math.floor(h))
    hi = min(lo + 1, n - 1)
    return float(sorted_xs[lo] + (h - lo) * (sorted_xs[hi] - sorted_xs[lo]))


def _binom_pmfs(n: int, p: float) -> Tuple[int, List[float]]:
    """(first k, pmf values) of Binomial(n, p) over a window that holds all but ~1e-30 of the mass."""
    if n <= 20000:
        lo, hi = 0, n
    else:
        sd = math.sqrt(n * p * (1.0 - p))
        lo, hi = max(0, int(n * p - 12 * sd - 12)), min(n, int(n * p + 12 * sd + 12))
    lgn = math.lgamma(n + 1)
    lp, lq = math.log(p), math.log1p(-p)
    return lo, [math.exp(lgn - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
                for k in range(lo, hi + 1)]


def quantile_ci_ranks(n: int, p: float, confidence: float = 0.95) -> Optional[Tuple[int, int]]:
    """1-based ranks (l, u) with P(X(l) <= q_p <= X(u)) >= confidence, equal tails; None if not inside 1..n.

    Distribution-free: the count of samples below the true p-quantile is Binomial(n, p).
    """
    if n < 1 or not 0.0 < p < 1.0:
        return None
    tail = (1.0 - confidence) / 2.0
    lo, pmf = _binom_pmfs(n, p)
    # l: the largest rank with P(B <= l-1) <= tail.
    acc, l_rank = 0.0, 0
    for i, v in enumerate(pmf):
        k = lo + i
        if acc + v > tail:
            l_rank = k  # P(B <= k-1) = acc <= tail, P(B <= k) > tail
            break
        acc += v
    # u: the smallest rank with P(B >= u) <= tail, summed from the top to avoid cancellation.
    acc, u_rank = 0.0, n + 1
    for i in range(len(pmf) - 1, -1, -1):
        k = lo + i
        if acc + pmf[i] > tail:
            u_rank = k + 1
            break
        acc += pmf[i]
    if l_rank < 1 or u_rank > n:
        return None
    return l_rank, u_rank


def min_samples_for_percentile(p: float, confidence: float = 0.95) -> int:
    """Smallest n for which the p-quantile's interval (equal tails) lies inside the sample."""
    tail = (1.0 - confidence) / 2.0
    n = max(1, int(math.ceil(math.log(tail) / math.log(max(p, 1.0 - p)))) - 1)
    while quantile_ci_ranks(n, p, confidence) is None:
        n += 1
    return n


def mlperf_min_queries(p: float, confidence: float = 0.99, over: int = 1) -> int:
    """MLPerf LoadGen's early-stopping floor: the smallest n with P(Binomial(n, 1 - p) <= over) <= 1 - confidence.

    With n runs of which at most `over` exceed a latency L, L bounds the true p-quantile at that confidence
    (one-sided). LoadGen's SingleStream rule takes over = 1 at 99%: p50 11, p90 64, p95 130, p99 662 runs.
    """
    n = over + 1
    q = 1.0 - p
    while math.fsum(math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                             + k * math.log(q) + (n - k) * math.log(p)) for k in range(over + 1)) > 1.0 - confidence:
        n += 1
    return n


def percentile_rel_width(sorted_xs: Sequence[float], pct: float, confidence: float) -> Optional[float]:
    """(hi - lo) / value of the pct-th percentile's order-statistic interval; None while it has no interval."""
    ranks = quantile_ci_ranks(len(sorted_xs), pct / 100.0, confidence)
    value = percentile_type7(sorted_xs, pct / 100.0) if sorted_xs else 0.0
    if ranks is None or value <= 0.0:
        return None
    return (sorted_xs[ranks[1] - 1] - sorted_xs[ranks[0] - 1]) / value


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 3000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-14:
            break
    return h


def betainc_reg(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student t cumulative distribution."""
    tail = 0.5 * betainc_reg(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(q: float, df: float) -> float:
    """Student t quantile (0 < q < 1) by bisection on t_cdf."""
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    hi = 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    lo = 0.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def mean_std(xs: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (n-1; None below two samples)."""
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


def mean_ci(xs: Sequence[float], confidence: float = 0.95) -> Optional[Tuple[float, float]]:
    """Student-t interval for the mean; None below two samples."""
    n = len(xs)
    if n < 2:
        return None
    mean, sd = mean_std(xs)
    assert sd is not None
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def metric(value: Optional[float], unit: str, n: Optional[int] = None, ci: Optional[Tuple[float, float]] = None,
           confidence: Optional[float] = None, note: Optional[str] = None, nd: int = 4) -> Json:
    """One metric entry as the protocol writes it."""
    return {"value": _finite(value, nd), "unit": unit, "n": n,
            "ci": None if ci is None else [_finite(ci[0], nd), _finite(ci[1], nd)],
            "confidence": confidence if ci is not None else None, "note": note}


def percentile_metric(xs: Sequence[float], pct: float, unit: str, confidence: float) -> Json:
    """A percentile with its order-statistic interval, or null with a note when the sample is too small."""
    n = len(xs)
    p = pct / 100.0
    ranks = quantile_ci_ranks(n, p, confidence)
    if ranks is None:
        need = min_samples_for_percentile(p, confidence)
        return metric(None, unit, n=n, note="insufficient samples: n=%d < %d needed for p%g at %g%% confidence"
                      % (n, need, pct, confidence * 100))
    s = sorted(xs)
    return metric(percentile_type7(s, p), unit, n=n, ci=(s[ranks[0] - 1], s[ranks[1] - 1]), confidence=confidence)


def mean_metric(xs: Sequence[float], unit: str, confidence: float) -> Json:
    """Mean with a t-interval (none from a single sample)."""
    if not xs:
        return metric(None, unit, n=0, note="no samples")
    return metric(mean_std(xs)[0], unit, n=len(xs), ci=mean_ci(xs, confidence), confidence=confidence,
                  note=None if len(xs) > 1 else "one sample: no interval")


def series_metrics(prefix: str, xs: Sequence[float], unit: str, confidence: float) -> Json:
    """mean/std/min/max and p50..p99 of one sample series (latency_ms, itl_ms)."""
    out: Json = {}
    if xs:
        out[prefix + "_mean"] = mean_metric(xs, unit, confidence)
        sd = mean_std(xs)[1]
        out[prefix + "_std"] = metric(sd, unit, n=len(xs), note=None if sd is not None else "one sample")
        out[prefix + "_min"] = metric(min(xs), unit, n=len(xs))
        out[prefix + "_max"] = metric(max(xs), unit, n=len(xs))
    for pct in PERCENTILES:
        out["%s_p%d" % (prefix, pct)] = percentile_metric(xs, pct, unit, confidence)
    return out


# ------------------------------------------------------------------------------------ format detection

def _u32(b: Any, off: int, size: int, what: str, path: str) -> int:
    if off < 0 or off + 4 > size:
        raise ArtifactError("%s: truncated TFLite file (%s at byte %d is past the end, %d bytes)"
                            % (path, what, off, size))
    return int(struct.unpack_from("<I", b, off)[0])


def _check_tflite(b: Any, size: int, path: str) -> None:
    """Walk the flatbuffer's Model table enough to see that every buffer lies inside the file."""
    root = _u32(b, 0, size, "root table offset", path)
    vt = root - struct.unpack_from("<i", b, root)[0] if root + 4 <= size else -1
    if vt < 0 or vt + 4 > size:
        raise ArtifactError("%s: truncated or corrupt TFLite file (bad root table)" % path)
    vt_size = struct.unpack_from("<H", b, vt)[0]

    def field(table: int, vtab: int, vsize: int, i: int) -> int:
        slot = 4 + 2 * i
        if slot + 2 > vsize or vtab + slot + 2 > size:
            return 0
        off = int(struct.unpack_from("<H", b, vtab + slot)[0])
        return table + off if off else 0

    def vector(pos: int, what: str) -> Tuple[int, int]:
        start = pos + _u32(b, pos, size, what, path)
        n = _u32(b, start, size, what + " length", path)
        return start + 4, n

    sub = field(root, vt, vt_size, 2)
    if not sub:
        raise ArtifactError("%s: TFLite model has no subgraphs" % path)
    _, nsub = vector(sub, "subgraphs")
    if nsub < 1:
        raise ArtifactError("%s: TFLite model has no subgraphs" % path)
    bufs = field(root, vt, vt_size, 4)
    if not bufs:
        return
    start, nbuf = vector(bufs, "buffers")
    if start + 4 * nbuf > size:
        raise ArtifactError("%s: truncated TFLite file (buffer table past the end)" % path)
    for i in range(nbuf):
        pos = start + 4 * i
        t = pos + _u32(b, pos, size, "buffer", path)
        if t + 4 > size:
            raise ArtifactError("%s: truncated TFLite file (buffer %d past the end)" % (path, i))
        tv = t - struct.unpack_from("<i", b, t)[0]
        if tv < 0 or tv + 4 > size:
            raise ArtifactError("%s: truncated or corrupt TFLite file (buffer %d)" % (path, i))
        tvs = struct.unpack_from("<H", b, tv)[0]
        data = field(t, tv, tvs, 0)
        if data:
            dstart, dlen = vector(data, "buffer %d data" % i)
            if dstart + dlen > size:
                raise ArtifactError("%s: truncated TFLite file (buffer %d needs %d bytes, file has %d)"
                                    % (path, i, dstart + dlen, size))
        ext = field(t, tv, tvs, 1)
        if ext and ext + 8 <= size:
            off = struct.unpack_from("<Q", b, ext)[0]
            szf = field(t, tv, tvs, 2)
            ln = struct.unpack_from("<Q", b, szf)[0] if szf and szf + 8 <= size else 0
            if off > 1 and off + ln > size:
                raise ArtifactError("%s: truncated TFLite file (buffer %d needs %d bytes, file has %d)"
                                    % (path, i, off + ln, size))


# ggml type -> (block size in elements, bytes per block); unknown types skip the size check.
_GGML_SIZES: Dict[int, Tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}
_GGUF_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _check_gguf(b: Any, size: int, path: str) -> None:
    """Parse the GGUF header, metadata and tensor table; every tensor's data must lie inside the file."""
    pos = [4]

    def take(fmt: str) -> Any:
        n = struct.calcsize(fmt)
        if pos[0] + n > size:
            raise ArtifactError("%s: truncated GGUF file (header ends at byte %d of %d)" % (path, pos[0], size))
        v = struct.unpack_from(fmt, b, pos[0])[0]
        pos[0] += n
        return v

    def string() -> bytes:
        n = take("<Q")
        if pos[0] + n > size:
            raise ArtifactError("%s: truncated GGUF file (string of %d bytes at byte %d, file has %d)"
                                % (path, n, pos[0], size))
        s = bytes(b[pos[0]:pos[0] + n])
        pos[0] += n
        return bytes(s)

    def value(t: int) -> Any:
        if t in _GGUF_SCALAR:
            return take(_GGUF_SCALAR[t])
        if t == 8:
            return string()
        if t == 9:
            it, n = take("<I"), take("<Q")
            if n > size:
                raise ArtifactError("%s: corrupt GGUF file (array of %d items)" % (path, n))
            if it in _GGUF_SCALAR:  # skip fixed-size items without decoding them
                step = struct.calcsize(_GGUF_SCALAR[it]) * n
                if pos[0] + step > size:
                    raise ArtifactError("%s: truncated GGUF file (array past the end)" % path)
                pos[0] += step
                return None
            for _ in range(n):
                value(it)
            return None
        raise ArtifactError("%s: corrupt GGUF file (unknown metadata type %d)" % (path, t))

    version = take("<I")
    if version not in (1, 2, 3):
        raise ArtifactError("%s: unsupported GGUF version %d" % (path, version))
    cnt = "<I" if version == 1 else "<Q"
    n_tensors, n_kv = take(cnt), take(cnt)
    if n_tensors > size or n_kv > size:
        raise ArtifactError("%s: corrupt GGUF file (%d tensors, %d keys)" % (path, n_tensors, n_kv))
    alignment = 32
    for _ in range(n_kv):
        key = string()
        t = take("<I")
        v = value(t)
        if key == b"general.alignment" and isinstance(v, int) and v > 0:
            alignment = v
    tensors = []
    for _ in range(n_tensors):
        name = string()
        nd = take("<I")
        if nd > 8:
            raise ArtifactError("%s: corrupt GGUF file (tensor with %d dims)" % (path, nd))
        ne = 1
        for _ in range(nd):
            ne *= take("<Q")
        tensors.append((name, ne, take("<I"), take("<Q")))
    data = (pos[0] + alignment - 1) // alignment * alignment
    for name, ne, typ, off in tensors:
        blk = _GGML_SIZES.get(typ)
        nbytes = (ne // blk[0]) * blk[1] if blk else 0
        end = data + off + nbytes
        if end > size:
            raise ArtifactError("%s: truncated GGUF file (tensor %s needs bytes up to %d, file has %d)"
                                % (path, name.decode("utf-8", "replace"), end, size))


class _NotProto(Exception):
    pass


def _proto_fields(b: Any, start: int, end: int, size: int) -> List[Tuple[int, int, int, int]]:
    """Top-level protobuf fields in b[start:end] as (field, wire type, value or offset, length).

    Raises _NotProto for bytes that are not protobuf, ArtifactError-worthy EOFError when a field runs
    past the end of the file (a truncated file).
    """
    out = []
    pos = start

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= end:
                raise EOFError
            c = int(b[pos])
            pos += 1
            result |= (c & 0x7F) << shift
            if not c & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise _NotProto("varint too long")

    while pos < end:
        tag = varint()
        fno, wt = tag >> 3, tag & 7
        if fno == 0 or fno > 1000 or wt not in (0, 1, 2, 5):
            raise _NotProto("bad tag")
        if wt == 0:
            out.append((fno, wt, varint(), 0))
        elif wt == 1 or wt == 5:
            ln = 8 if wt == 1 else 4
            out.append((fno, wt, pos, ln))
            pos += ln
        else:
            ln = varint()
            out.append((fno, wt, pos, ln))
            pos += ln
        if pos > end:
            raise EOFError
    return out


def _check_onnx(b: Any, size: int, path: str) -> bool:
    """True if the bytes are an ONNX ModelProto (ir_version varint, a graph, an opset); raises if truncated."""
    try:
        fields = _proto_fields(b, 0, size, size)
    except _NotProto:
        return False
    except EOFError:
        if size > 2 and b[0] == 0x08:  # starts like ModelProto.ir_version: a cut-off ONNX file
            raise ArtifactError("%s: truncated ONNX file (a protobuf field runs past the end at %d bytes)"
                                % (path, size)) from None
        return False
    kinds = {f: wt for f, wt, _, _ in fields}
    if kinds.get(1) != 0 or kinds.get(7) != 2:
        return False
    ir = [v for f, wt, v, _ in fields if f == 1][0]
    if not 1 <= ir <= 100:
        return False
    if kinds.get(8) != 2:
        raise ArtifactError("%s: truncated or incomplete ONNX file (no opset_import after the graph)" % path)
    graph = [(o, ln) for f, wt, o, ln in fields if f == 7][-1]
    try:
        _proto_fields(b, graph[0], graph[0] + graph[1], size)
    except (_NotProto, EOFError):
        raise ArtifactError("%s: corrupt ONNX file (the graph is not a valid protobuf message)" % path) from None
    return True


def detect_format(path: str) -> str:
    """onnx | tflite | gguf from the file's bytes; ArtifactError naming the file otherwise."""
    try:
        size = os.path.getsize(path)
        fh = open(path, "rb")
    except OSError as e:
        raise ArtifactError("%s: cannot read artifact (%s)" % (path, e.strerror or e)) from None
    with fh:
        if size < 8:
            raise ArtifactError("%s: not a model file (%d bytes): expected ONNX, TFLite or GGUF" % (path, size))
        b = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if b[:4] == b"GGUF":
                _check_gguf(b, size, path)
                return "gguf"
            if b[4:8] == b"TFL3":
                _check_tflite(b, size, path)
                return "tflite"
            if _check_onnx(b, size, path):
                return "onnx"
        except struct.error:
            raise ArtifactError("%s: truncated or corrupt model file" % path) from None
        finally:
            b.close()
    raise ArtifactError("%s: not a recognised model file: neither GGUF (magic 'GGUF'), TFLite (identifier "
                        "'TFL3' at byte 4) nor ONNX (protobuf ModelProto)" % path)


# --------------------------------------------------------------------------------------- fingerprint

def _read(path: str) -> Optional[str]:
    try:
        with open(path, "r", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _kv_file(path: str, sep: str = ":") -> Dict[str, str]:
    text = _read(path) or ""
    out: Dict[str, str] = {}
    for line in text.splitlines():
        k, s, v = line.partition(sep)
        if s and k.strip() not in out:
            out[k.strip()] = v.strip()
    return out


def _cpu_model() -> Optional[str]:
    info = _kv_file("/proc/cpuinfo")
    for key in ("model name", "Hardware", "Processor", "cpu model", "uarch"):
        if info.get(key):
            return info[key]
    if info.get("CPU implementer"):
        return "ARM implementer %s part %s" % (info.get("CPU implementer"), info.get("CPU part", "?"))
    return platform.processor() or None


def _norm_dist(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def dist_versions(names: Sequence[str]) -> Dict[str, str]:
    """Versions of installed distributions from their *.dist-info / *.egg-info names on sys.path.

    importlib.metadata would cost the agent ~5 MiB of RSS; a directory listing costs nothing.
    """
    want = {_norm_dist(n): n for n in names}
    out: Dict[str, str] = {}
    for d in sys.path:
        try:
            entries = os.listdir(d or ".")
        except OSError:
            continue
        for e in entries:
            if not (e.endswith(".dist-info") or e.endswith(".egg-info")):
                continue
            name, _, ver = e.rsplit(".", 1)[0].partition("-")
            key = _norm_dist(name)
            if key in want and want[key] not in out and ver:
                out[want[key]] = ver.split("-")[0]
    return out


def runtime_versions() -> Dict[str, str]:
    """Installed runtime distributions (nothing is imported)."""
    return dist_versions(("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime",
                          "llama-cpp-python", "numpy"))


def _cpus() -> List[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cpufreq(base: str = "/sys/devices/system/cpu") -> Dict[str, Json]:
    """Per-CPU governor and current/max frequency (MHz) where sysfs shows them."""
    out: Dict[str, Json] = {}
    try:
        cpus = sorted((d for d in os.listdir(base) if d.startswith("cpu") and d[3:].isdigit()),
                      key=lambda d: int(d[3:]))
    except OSError:
        return out
    for cpu in cpus:
        d = os.path.join(base, cpu, "cpufreq")
        entry: Json = {}
        gov = _read(os.path.join(d, "scaling_governor"))
        if gov:
            entry["governor"] = gov.strip()
        for key, fname in (("cur_mhz", "scaling_cur_freq"), ("max_mhz", "cpuinfo_max_freq"),
                           ("scaling_max_mhz", "scaling_max_freq")):
            v = _read(os.path.join(d, fname))
            if v and v.strip().isdigit():
                entry[key] = int(v.strip()) / 1000.0
        if entry:
            out[cpu] = entry
    return out


def thermal(base: str = "/sys/class/thermal") -> Dict[str, float]:
    """Thermal zone temperatures in degrees C, keyed `zoneN:type`."""
    out: Dict[str, float] = {}
    try:
        zones = sorted(z for z in os.listdir(base) if z.startswith("thermal_zone"))
    except OSError:
        return out
    for z in zones:
        t = _read(os.path.join(base, z, "temp"))
        typ = (_read(os.path.join(base, z, "type")) or "").strip()
        try:
            v = int((t or "").strip())
        except ValueError:
            continue
        out["%s:%s" % (z, typ) if typ else z] = v / 1000.0 if abs(v) > 200 else float(v)
    return out


_ANDROID_PROPS = ("ro.product.manufacturer", "ro.product.model", "ro.product.device", "ro.board.platform",
                  "ro.soc.manufacturer", "ro.soc.model", "ro.hardware", "ro.build.version.release",
                  "ro.build.version.sdk", "ro.build.fingerprint")


def android_props() -> Dict[str, str]:
    """A few getprop values (one `getprop` call, its `[key]: [value]` lines), where getprop exists."""
    out: Dict[str, str] = {}
    exe = None
    for d in (os.environ.get("PATH", "") + ":/system/bin").split(":"):
        if d and os.access(os.path.join(d, "getprop"), os.X_OK):
            exe = os.path.join(d, "getprop")
            break
    if exe is None:
        return out
    try:
        text = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10,
                              check=False).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return out
    for line in text.splitlines():
        m = re.match(r"\[([^\]]+)\]: \[(.*)\]\s*$", line.strip())
        if m and m.group(1) in _ANDROID_PROPS and m.group(2):
            out[m.group(1)] = m.group(2)
    return out


def fingerprint() -> Json:
    """Device fingerprint; each field is absent where it cannot be read."""
    fp: Json = {}

    def put(key: str, fn: Callable[[], Any]) -> None:
        try:
            v = fn()
        except Exception:
            return
        if v not in (None, "", {}, []):
            fp[key] = v

    put("os", platform.system)
    put("os_release", lambda: _kv_file("/etc/os-release", "=").get("PRETTY_NAME", "").strip('"'))
    put("kernel", platform.release)
    put("kernel_version", platform.version)
    put("machine", platform.machine)
    put("hostname", platform.node)
    put("cpu_model", _cpu_model)
    put("cpu_count", os.cpu_count)
    put("cpu_affinity", _cpus)
    put("ram_total_mib", lambda: round(int(_kv_file("/proc/meminfo")["MemTotal"].split()[0]) / 1024.0, 1))
    put("ram_available_mib",
        lambda: round(int(_kv_file("/proc/meminfo")["MemAvailable"].split()[0]) / 1024.0, 1))
    put("python", platform.python_version)
    put("python_implementation", platform.python_implementation)
    put("runtimes", runtime_versions)
    put("cpufreq", cpufreq)
    put("thermal_c", thermal)
    put("android", android_props)
    fp["agent_version"] = AGENT_VERSION
    return fp


# ------------------------------------------------------------------------------------------ memory

def proc_status() -> Dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in MiB (empty where /proc is absent)."""
    out: Dict[str, float] = {}
    for k, v in _kv_file("/proc/self/status").items():
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem") and v.endswith("kB"):
            out[k] = int(v.split()[0]) / 1024.0
    return out


def reset_hwm() -> bool:
    """Reset this process's VmHWM to its current RSS (clear_refs 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cgroup_oom_kills() -> Optional[int]:
    """OOM kills counted by this process's memory cgroup (v1 oom_control or v2 memory.events)."""
    text = _read("/proc/self/cgroup") or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        ctrls, rel = parts[1].split(","), parts[2].lstrip("/")
        if "memory" in ctrls:
            f = _kv_file(os.path.join("/sys/fs/cgroup/memory", rel, "memory.oom_control"), " ")
        elif parts[1] == "":
            f = _kv_file(os.path.join("/sys/fs/cgroup", rel, "memory.events"), " ")
        else:
            continue
        if f.get("oom_kill", "").isdigit():
            return int(f["oom_kill"])
    return None


_OOM_WORDS = ("bad_alloc", "memoryerror", "failed to allocate", "cannot allocate memory", "out of memory",
              "unable to allocate", "enomem", "memory allocation", "allocation failed", "failed to map segment")


def looks_like_oom(text: str) -> bool:
    """Whether a runtime's message or stderr says an allocation failed."""
    low = text.lower()
    return any(w in low for w in _OOM_WORDS)


# ------------------------------------------------------------------------------------------- spec

def parse_spec(raw: str) -> Json:
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
        spec = json.loads(text)
    except ValueError as e:
        raise SpecError("spec is not valid JSON: %s" % e) from None
    if not isinstance(spec, dict):
        raise SpecError("spec must be a JSON object")
    out = _typed(spec, SPEC_DEFAULTS, _SPEC_TYPES, "spec")
    out["gguf"] = _typed(out["gguf"], GGUF_DEFAULTS, _GGUF_TYPES, "spec.gguf")
    if out["adaptive"] is not None:
        a = out["adaptive"] = _typed(out["adaptive"], ADAPTIVE_DEFAULTS, _ADAPTIVE_TYPES, "spec.adaptive")
        if not a["percentiles"] or not all(isinstance(p, _NUM) and not isinstance(p, bool) and 0 < p < 100
                                           for p in a["percentiles"]):
            raise SpecError("spec.adaptive.percentiles: expected a non-empty list of percentiles in (0, 100)")
        if a["rel_width"] <= 0:
            raise SpecError("spec.adaptive.rel_width: must be > 0 (e.g. 0.05: interval width 5% of the value)")
    if out["artifact"] is None:
        raise SpecError("spec.artifact: missing (path of the model file on this device)")
    if out["format"] is not None and out["format"] not in FORMATS:
        raise SpecError("spec.format: %r is not one of %s or null" % (out["format"], ", ".join(FORMATS)))
    if not 0.5 <= float(out["confidence"]) < 1.0:
        raise SpecError("spec.confidence: %r must be in [0.5, 1)" % out["confidence"])
    for k in ("warmup_runs", "min_runs"):
        if out[k] < 0:
            raise SpecError("spec.%s: must be >= 0" % k)
    if out["max_runs"] < 1:
        raise SpecError("spec.max_runs: must be >= 1")
    if out["timeout_s"] <= 0 or out["max_s"] <= 0:
        raise SpecError("spec.timeout_s and spec.max_s must be > 0")
    if out["threads"] is not None and out["threads"] < 1:
        raise SpecError("spec.threads: must be >= 1 or null (the runtime's default)")
    if out["pin_cpus"] is not None and not all(isinstance(c, int) and not isinstance(c, bool)
                                               for c in out["pin_cpus"]):
        raise SpecError("spec.pin_cpus: expected a list of CPU numbers")
    for k in ("dynamic_dims", "input_shapes"):
        for name, v in out[k].items():
            ok = (isinstance(v, int) and not isinstance(v, bool) and v > 0) if k == "dynamic_dims" else (
                isinstance(v, list) and all(isinstance(d, int) and d > 0 for d in v))
            if not ok:
                raise SpecError("spec.%s.%s: expected %s" % (k, name, "a positive int" if k == "dynamic_dims"
                                                              else "a list of positive ints"))
    g = out["gguf"]
    if g["prompt_tokens"] < 1 or g["new_tokens"] < 2 or g["repetitions"] < 1:
        raise SpecError("spec.gguf: prompt_tokens >= 1, new_tokens >= 2 and repetitions >= 1 are required")
    if g["prompt_tokens"] + g["new_tokens"] > g["n_ctx"]:
        raise SpecError("spec.gguf: prompt_tokens + new_tokens (%d) exceeds n_ctx (%d)"
                        % (g["prompt_tokens"] + g["new_tokens"], g["n_ctx"]))
    return out


def _typed(given: Json, defaults: Json, types: Dict[str, Tuple[Tuple[type, ...], bool]], where: str) -> Json:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise SpecError("%s: unknown key(s) %s; known: %s" % (where, ", ".join(unknown), ", ".join(sorted(defaults))))
    out = dict(defaults)
    for k, v in given.items():
        accepted, nullable = types[k]
        if v is None and nullable:
            out[k] = None
            continue
        bad_bool = isinstance(v, bool) and bool not in accepted
        if bad_bool or not isinstance(v, accepted):
            raise SpecError("%s.%s: expected %s%s, got %r" % (where, k, " or ".join(t.__name__ for t in accepted),
                                                              " or null" if nullable else "", v))
        out[k] = v
    return out


# ------------------------------------------------------------------------------------------ parent

def cmd_probe() -> int:
    emit({"event": "probe", "agent_version": AGENT_VERSION, "fingerprint": fingerprint(),
          "python": platform.python_version(), "runtimes": _importable()})
    return 0


def _importable() -> Dict[str, bool]:
    import importlib.util
    out: Dict[str, bool] = {}
    for mod in ("onnxruntime", "ai_edge_litert", "tflite_runtime", "llama_cpp"):
        try:
            out[mod] = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            out[mod] = False
    return out


def cmd_hash(path: str) -> int:
    import hashlib  # lazily: OpenSSL costs the idle agent ~4 MiB

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        emit({"event": "error", "message": "%s: cannot read (%s)" % (path, e.strerror or e)})
        return 2
    emit({"event": "hash", "path": path, "sha256": h.hexdigest(), "size": os.path.getsize(path)})
    return 0


def _result(status: str, message: Optional[str], fmt: Optional[str], fp: Json) -> Json:
    return {"event": "result", "status": status, "message": message, "signal": None, "format": fmt,
            "runtime": {}, "metrics": {}, "samples": {}, "phases": [], "fingerprint": fp,
            "os_peak_rss_mib": None, "os_peak_rss_equals": None, "thermal": {"start": fp.get("thermal_c", {})},
            "statistics": None, "stopping": None, "agent_version": AGENT_VERSION}


def cmd_run(raw_spec: str) -> int:
    try:
        spec = parse_spec(raw_spec)
    except SpecError as e:
        emit({"event": "error", "message": str(e)})
        return 2
    fp = fingerprint()
    path = spec["artifact"]
    try:
        fmt = detect_format(path)
        if spec["format"] is not None and spec["format"] != fmt:
            raise ArtifactError("%s: spec says format %s but the bytes are %s" % (path, spec["format"], fmt))
    except ArtifactError as e:
        emit(_result("error", str(e), spec["format"], fp))
        return 0
    spec["format"] = fmt
    res = _result("error", None, fmt, fp)
    run_child(spec, res)
    res["thermal"]["end"] = thermal()
    emit(res)
    return 0


def _child_program() -> str:
    """This file byte-compiled and cached beside it (else in the temp dir), for the model process to run.

    Compiling this source costs a process ~4 MiB of resident memory, loading a .pyc ~0.3 MiB; in the model
    process that memory would be counted in the model's figures. Falls back to the source.
    """
    src = os.path.abspath(__file__)
    if src.endswith(".pyc"):  # already running from it (see main)
        return src
    try:
        import importlib.util
        import marshal
        import tempfile

        st = os.stat(src)
        name = "edgefarm-agent-%d-%d.%s.pyc" % (st.st_size, st.st_mtime_ns, sys.implementation.cache_tag)
        for d in (os.path.join(os.path.dirname(src), "__pycache__"), tempfile.gettempdir()):
            cfile = os.path.join(d, name)
            try:
                cst = os.stat(cfile)
            except OSError:
                cst = None
            if cst is not None:
                if cst.st_uid == os.getuid() and not cst.st_mode & 0o022:  # never run someone else's file
                    return cfile
                continue
            try:
                os.makedirs(d, exist_ok=True)
                with open(src, "rb") as fh:
                    code = compile(fh.read(), src, "exec", dont_inherit=True)
                header = importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, int(st.st_mtime) & 0xFFFFFFFF,
                                                                   st.st_size & 0xFFFFFFFF)
                tmp = "%s.%d.tmp" % (cfile, os.getpid())
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "wb") as out:
                    out.write(header + marshal.dumps(code))
                os.replace(tmp, cfile)
                return cfile
            except OSError:
                continue
    except Exception:
        pass
    return src


class _Supervised:
    """What the agent saw of its model process: events, exit status, rusage, whether it was killed."""

    def __init__(self) -> None:
        self.child: Optional[Json] = None  # the child_result event
        self.samples: Json = {}
        self.phases: List[Json] = []
        self.status = 0
        self.rusage: Any = None
        self.timed_out = False
        self.t_end = 0.0
        self.stderr_tail = ""


def run_child(spec: Json, res: Json) -> None:
    """Run the model in a child process; relay its phase events; fill `res` from what happened."""
    env = dict(os.environ)
    if spec["rlimit_as_mib"] is not None:
        env["MALLOC_ARENA_MAX"] = "2"  # fewer 64 MiB malloc arenas: RLIMIT_AS counts address space
    env.setdefault("GGML_NO_BACKTRACE", "1")  # ggml_abort would attach gdb to print a backtrace first
    env["EDGEFARM_AGENT_PID"] = str(os.getpid())
    oom_before = cgroup_oom_kills()
    import tempfile

    with tempfile.TemporaryFile() as log:
        r_fd, w_fd = os.pipe()
        argv = [sys.executable, _child_program(), "_child", str(w_fd), json.dumps(spec)]
        deadline = time.monotonic() + float(spec["timeout_s"])
        # A process group of its own (killed whole on timeout), but not a session of its own: under the
        # kernel's autogroup scheduling a new session is weighed as a separate group, so the model would
        # get a different CPU share than the same runtime run by hand, and niceness would not carry over.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(w_fd,),
                                preexec_fn=os.setpgrp, env=env, close_fds=True)
        os.close(w_fd)

        def stop(signum: int, frame: Any) -> None:  # the agent is being stopped: take the model with it
            _killpg(proc.pid)
            os._exit(128 + signum)

        old_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            sv = supervise(proc, r_fd, deadline)
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 8192))
        sv.stderr_tail = log.read().decode("utf-8", "replace")
    cg_oom = oom_before is not None and (cgroup_oom_kills() or 0) > oom_before
    fill_result(res, spec, sv, cg_oom)


def supervise(proc: "subprocess.Popen[bytes]", r_fd: int, deadline: float) -> _Supervised:
    """Read the child's events (relaying phases at once) until it exits or the deadline passes."""
    sv = _Supervised()
    buf = [b""]

    def feed(chunk: bytes) -> None:
        buf[0] += chunk
        while b"\n" in buf[0]:
            line, buf[0] = buf[0].split(b"\n", 1)
            try:
                ev = json.loads(line.decode("utf-8"))
            except ValueError:
                continue
            kind = ev.get("event") if isinstance(ev, dict) else None
            if kind == "phase":
                sv.phases.append(ev)
                emit(ev)  # relayed as it happens
            elif kind == "child_result":
                sv.child = ev
            elif kind == "child_samples":
                sv.samples = ev.get("samples") or {}

    eof = False
    reaped: Optional[Tuple[int, Any]] = None
    with os.fdopen(r_fd, "rb", buffering=0) as rd:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                sv.timed_out = True
                break
            if not eof and select.select([rd], [], [], min(left, 0.25))[0]:
                chunk = rd.read(65536)
                if chunk:
                    feed(chunk)
                    continue
                eof = True
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = (status, ru)
                while not eof and select.select([rd], [], [], 0)[0]:  # what is left, without blocking
                    chunk = rd.read(65536)
                    eof = not chunk
                    feed(chunk)
                break
            if eof:
                time.sleep(0.01)
    if sv.timed_out or not eof:  # on timeout, or a grandchild still holds the pipe: end the whole group
        _killpg(proc.pid)
    if reaped is None:
        _, status, ru = os.wait4(proc.pid, 0)
    else:
        status, ru = reaped
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else -1
    sv.status, sv.rusage, sv.t_end = status, ru, time.monotonic()
    return sv


def fill_result(res: Json, spec: Json, sv: _Supervised, cg_oom: bool) -> None:
    """Status, message, signal, metrics and memory figures from what the supervisor saw."""
    maxrss_kib = sv.rusage.ru_maxrss / (1024.0 if sys.platform == "darwin" else 1.0)
    res["os_peak_rss_mib"] = round(maxrss_kib / 1024.0, 3)
    res["phases"] = _phase_list(sv.phases, sv.t_end)
    child = sv.child
    if child is not None:
        res["runtime"] = child.get("runtime") or {}
        res["samples"] = sv.samples
        res["message"] = child.get("message")
        res["status"] = child.get("status", "error")
        res["stopping"] = child.get("stopping")
        if child.get("raw"):
            res["metrics"] = build_metrics(child["raw"], sv.samples, float(spec["confidence"]))
            res["statistics"] = {"percentile_method": PERCENTILE_METHOD, "confidence": spec["confidence"]}
            res["os_peak_rss_equals"] = ("peak_rss_inference_mib" if child["raw"].get("hwm_reset")
                                         else "peak_rss_mib")
    capped = spec["rlimit_as_mib"] is not None
    cap = " under rlimit_as_mib=%g" % spec["rlimit_as_mib"] if capped else ""
    tail, status = sv.stderr_tail, sv.status
    last = _last_lines(tail)
    why = ": " + last if last else ""
    if sv.timed_out:
        res["status"] = "timeout"
        res["message"] = "model process did not finish within timeout_s=%g s; its process group was killed" % (
            spec["timeout_s"])
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        res["signal"] = sig
        name = _signame(sig)
        if child is not None and res["status"] == "ok":  # the measurement is complete; say what followed
            res["message"] = "model process died of signal %d (%s) after reporting its result%s" % (sig, name, why)
        elif (sig == signal.SIGKILL and (capped or cg_oom)) or looks_like_oom(tail):
            res["status"] = "oom"
            res["message"] = "out of memory%s: model process died of %s%s%s" % (
                cap, name, " (the memory cgroup counted an OOM kill)" if cg_oom else "", why)
        else:
            res["status"] = "crashed"
            res["message"] = "model process died of signal %d (%s)%s" % (sig, name, why)
    elif child is None:
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        res["status"] = "oom" if looks_like_oom(tail) else "error"
        res["message"] = "%smodel process exited %d without a result%s" % (
            "out of memory%s: " % cap if res["status"] == "oom" else "", code, why)
    elif res["status"] == "error" and (looks_like_oom(res["message"] or "") or (capped and looks_like_oom(tail))):
        res["status"] = "oom"
        said = [ln.strip() for ln in tail.splitlines() if looks_like_oom(ln)]
        res["message"] = "out of memory%s: %s%s" % (cap, res["message"], " (runtime log: %s)" % said[-1][-300:]
                                                     if said and said[-1] not in (res["message"] or "") else "")
    if res["status"] == "error" and not res["message"]:
        res["message"] = last or "unknown error"


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


_REASON_WORDS = ("assert", "error", "terminate called", "what()", "failed", "abort", "exception", "killed")


def _last_lines(text: str, n: int = 2) -> str:
    """The stderr lines that say why (assertions, errors), else the last lines; for messages."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    telling = [ln for ln in lines if any(w in ln.lower() for w in _REASON_WORDS) and not ln.startswith("#")]
    # /tmp/pip-wheel-x/vendor/llama.cpp/src/llama-vocab.cpp:2544: -> llama-vocab.cpp:2544:
    return " | ".join(re.sub(r"(?:/[^\s/:]+)+/([^\s/:]+:\d+)", r"\1", ln) for ln in (telling or lines)[-n:])[-600:]


def _phase_list(events: List[Json], t_end: float) -> List[Json]:
    """Phases that started, with monotonic start/end and the model process's CPU seconds in each.

    cpu_s well below (t_end - t_start) x threads means the model process was starved of CPU.
    """
    out: List[Json] = []
    for i, ev in enumerate(events):
        if ev.get("phase") == "done":
            break
        nxt = events[i + 1] if i + 1 < len(events) else None
        entry: Json = {"name": ev.get("phase"), "t_start": ev.get("t"), "t_end": nxt["t"] if nxt else t_end,
                       "cpu_s": None}
        if nxt is not None and isinstance(nxt.get("cpu"), float) and isinstance(ev.get("cpu"), float):
            entry["cpu_s"] = round(nxt["cpu"] - ev["cpu"], 6)
        out.append(entry)
    return out


def build_metrics(raw: Json, samples: Dict[str, List[float]], confidence: float) -> Json:
    """Metrics (harness/metrics.py names) from the child's raw figures and sample series."""
    m: Json = {}
    for name, unit in (("load_time_ms", "ms"), ("first_inference_ms", "ms"), ("load_footprint_mib", "MiB"),
                       ("peak_rss_mib", "MiB"), ("peak_rss_load_mib", "MiB"), ("peak_rss_inference_mib", "MiB"),
                       ("rss_anon_mib", "MiB"), ("rss_file_mib", "MiB"), ("throughput_per_s", "1/s")):
        if raw.get(name) is not None:
            m[name] = metric(raw[name], unit, n=1)
    lat = samples.get("latency_ms") or []
    m.update(series_metrics("latency_ms", lat, "ms", confidence))
    if "itl_ms" in samples:
        itl = samples["itl_ms"]
        m.update({k: v for k, v in series_metrics("itl_ms", itl, "ms", confidence).items()
                  if k[len("itl_ms_"):] in ("p50", "p90", "p95", "p99")})
        m["tpot_ms"] = mean_metric(itl, "ms", confidence)
        ttft = sorted(samples.get("ttft_ms") or [])
        if ttft:
            ranks = quantile_ci_ranks(len(ttft), 0.5, confidence)
            m["ttft_ms"] = metric(percentile_type7(ttft, 0.5), "ms", n=len(ttft),
                                  ci=None if ranks is None else (ttft[ranks[0] - 1], ttft[ranks[1] - 1]),
                                  confidence=confidence,
                                  note="median" if ranks else "median; too few repetitions for an interval")
        m["prefill_tokens_per_s"] = mean_metric(samples.get("prefill_tokens_per_s") or [], "tok/s", confidence)
        m["decode_tokens_per_s"] = mean_metric(samples.get("decode_tokens_per_s") or [], "tok/s", confidence)
    return m


# ------------------------------------------------------------------------------------------- child

class Backend:
    """A loaded model that can run one inference; implementations below, one per runtime."""

    runtime: Json

    def load(self) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        """Build inputs (not timed)."""

    def run_once(self) -> None:
        raise NotImplementedError


def _np_dtype(np: Any, onnx_type: str) -> Any:
    table = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
             "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16,
             "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_}
    if onnx_type not in table:
        raise ValueError("input type %s is not supported by the agent's input generator" % onnx_type)
    return table[onnx_type]


def make_input(np: Any, rng: Any, name: str, shape: Sequence[int], dtype: Any) -> Any:
    """Seeded input: floats ~ N(0,1); integers 0/1 (valid ids, positions, types); masks all ones."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(size=tuple(shape)).astype(dt)
    if dt.kind == "b":
        return np.ones(tuple(shape), dtype=dt)
    if "mask" in name.lower():
        return np.ones(tuple(shape), dtype=dt)
    return rng.integers(0, 2, size=tuple(shape)).astype(dt)


class OnnxBackend(Backend):
    def __init__(self, spec: Json) -> None:
        self.spec = spec
        import onnxruntime as ort  # type: ignore[import-not-found, import-untyped, unused-ignore]
        self.ort = ort
        self.runtime = {"name": "onnxruntime", "version": str(ort.__version__), "providers": "CPUExecutionProvider"}

    def load(self) -> None:
        so = self.ort.SessionOptions()
        if self.spec["threads"]:
            so.intra_op_num_threads = int(self.spec["threads"])
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = self.ort.InferenceSession(self.spec["artifact"], sess_options=so,
                                              providers=["CPUExecutionProvider"])

    def prepare(self) -> None:
        import numpy as np
        rng = np.random.default_rng(self.spec["seed"])
        self.feeds = {}
        for inp in self.sess.get_inputs():
            shape = self.spec["input_shapes"].get(inp.name)
            if shape is None:
                shape = [d if isinstance(d, int) and d > 0 else
                         int(self.spec["dynamic_dims"].get(d, 1)) if isinstance(d, str) else 1 for d in inp.shape]
            self.feeds[inp.name] = make_input(np, rng, inp.name, shape, _np_dtype(np, inp.type))
        self.out_names = [o.name for o in self.sess.get_outputs()]

    def run_once(self) -> None:
        self.sess.run(self.out_names, self.feeds)


class TfliteBackend(Backend):
    def __init__(self, spec: Json) -> None:
        self.spec = spec
        try:
            from ai_edge_litert import interpreter as tfl  # type: ignore[import-not-found, import-untyped, unused-ignore]
            self.runtime = {"name": "ai-edge-litert", "version": _dist_version("ai-edge-litert")}
        except ImportError:
            from tflite_runtime import interpreter as tfl  # type: ignore[import-not-found, import-untyped, unused-ignore]
            self.runtime = {"name": "tflite-runtime", "version": _dist_version("tflite-runtime")}
        self.tfl = tfl

    def load(self) -> None:
        kw: Json = {"model_path": self.spec["artifact"]}
        if self.spec["threads"]:
            kw["num_threads"] = int(self.spec["threads"])
        self.it = self.tfl.Interpreter(**kw)
        for d in self.it.get_input_details():
            sig = list(d.get("shape_signature", d["shape"]))
            want = self.spec["input_shapes"].get(d["name"])
            if want is None and any(x < 0 for x in sig):
                want = [x if x > 0 else 1 for x in sig]
            if want is not None and list(want) != list(d["shape"]):
                self.it.resize_tensor_input(d["index"], list(want))
        self.it.allocate_tensors()

    def prepare(self) -> None:
        import numpy as np
        rng = np.random.default_rng(self.spec["seed"])
        for d in self.it.get_input_details():
            self.it.set_tensor(d["index"], make_input(np, rng, d["name"], list(d["shape"]), d["dtype"]))

    def run_once(self) -> None:
        self.it.invoke()


def _dist_version(dist: str) -> str:
    return dist_versions((dist,)).get(dist, "unknown")


class GgufBackend(Backend):
    """llama.cpp through llama-cpp-python; one inference = one request (prompt in, new_tokens out)."""

    def __init__(self, spec: Json) -> None:
        self.spec = spec
        self.g = spec["gguf"]
        import llama_cpp  # type: ignore[import-not-found, import-untyped, unused-ignore]
        self.llama_cpp = llama_cpp
        self.runtime = {"name": "llama-cpp-python", "version": str(llama_cpp.__version__)}
        self.samples: Dict[str, List[float]] = {"ttft_ms": [], "prefill_tokens_per_s": [],
                                                "decode_tokens_per_s": [], "itl_ms": []}
        self.recording = False
        self.llm: Any = None

    def load(self) -> None:
        threads = self.spec["threads"] or len(_cpus())
        self.llm = self.llama_cpp.Llama(
            model_path=self.spec["artifact"], n_ctx=int(self.g["n_ctx"]), n_batch=max(512, self.g["prompt_tokens"]),
            n_threads=threads, n_threads_batch=threads, seed=int(self.spec["seed"]),
            verbose=True)  # llama.cpp logs go to the log the parent reads: a failure says why

    def prepare(self) -> None:
        import random
        n = int(self.g["prompt_tokens"])
        if self.g["prompt"]:
            toks = list(self.llm.tokenize(self.g["prompt"].encode("utf-8"), add_bos=True))
            toks = (toks * (n // max(1, len(toks)) + 1))[:n]
        else:  # llama-bench style: BOS, then seeded random token ids
            rng = random.Random(self.spec["seed"])
            toks = [self.llm.token_bos()] + [rng.randrange(self.llm.n_vocab()) for _ in range(n - 1)]
        self.prompt = toks
        # Greedy sampling in C (llama_sampler_sample: argmax over the last logits), as llama-bench does not
        # sample at all; the end-of-sequence token is ignored so every request decodes new_tokens.
        self.sampler = self.llama_cpp.llama_sampler_init_greedy()

    def run_once(self) -> None:
        llm, pc = self.llm, time.perf_counter
        sample, smpl, ctx = self.llama_cpp.llama_sampler_sample, self.sampler, self.llm.ctx
        new = int(self.g["new_tokens"])
        itl: List[float] = []
        llm.reset()
        t0 = pc()
        llm.eval(self.prompt)
        t1 = pc()
        tok = sample(smpl, ctx, -1)
        prev = t2 = pc()
        for _ in range(new - 1):
            llm.eval([tok])
            tok = sample(smpl, ctx, -1)
            t = pc()
            itl.append(t - prev)
            prev = t
        if self.recording:
            s = self.samples
            s["ttft_ms"].append((t2 - t0) * 1e3)
            s["prefill_tokens_per_s"].append(len(self.prompt) / (t1 - t0))
            s["decode_tokens_per_s"].append(len(itl) / math.fsum(itl))
            s["itl_ms"].extend(x * 1e3 for x in itl)


_RUNTIME_MODULES = {"onnx": ("onnxruntime",), "tflite": ("ai_edge_litert", "tflite_runtime"), "gguf": ("llama_cpp",)}


def _import_failure(fmt: str, e: ImportError, rlimit: Optional[float]) -> Tuple[str, str]:
    """(status, message) for a runtime that would not import: absent, or present but failing (memory cap)."""
    import importlib.util
    present = []
    for mod in _RUNTIME_MODULES[fmt]:
        try:
            if importlib.util.find_spec(mod) is not None:
                present.append(mod)
        except (ImportError, ValueError):
            pass
    if not present:
        return "error", "no %s runtime on this device: none of %s is installed (%s)" % (
            fmt, ", ".join(_RUNTIME_MODULES[fmt]), e)
    msg = "%s is installed but failed to import: %s: %s" % (present[0], type(e).__name__, e)
    if rlimit is not None or looks_like_oom(msg):
        return "oom", msg + (" (under rlimit_as_mib=%g)" % rlimit if rlimit is not None else "")
    return "error", msg


def make_backend(spec: Json) -> Backend:
    fmt = spec["format"]
    if fmt == "onnx":
        return OnnxBackend(spec)
    if fmt == "tflite":
        return TfliteBackend(spec)
    return GgufBackend(spec)


def timed_loop(fn: Callable[[], None], min_runs: int, min_s: float, max_s: float,
               max_runs: int = 10 ** 9) -> Tuple[List[float], float]:
    """Run fn until both min_runs and min_s are met, or max_s has passed, or max_runs were made (a sub-
    microsecond model would otherwise make hundreds of thousands of samples a second); (latencies ms, wall s)."""
    pc = time.perf_counter
    lat: List[float] = []
    start = pc()
    while True:
        t0 = pc()
        fn()
        t1 = pc()
        lat.append((t1 - t0) * 1e3)
        el = t1 - start
        if (len(lat) >= min_runs and el >= min_s) or el >= max_s or len(lat) >= max_runs:
            return lat, el


def adaptive_loop(fn: Callable[[], None], min_runs: int, min_s: float, max_s: float, percentiles: Sequence[float],
                  rel_width: float, confidence: float,
                  clock: Callable[[], float] = time.perf_counter, max_runs: int = 10 ** 9) -> Tuple[List[float], float, Json]:
    """Run fn until every target percentile's interval is narrower than rel_width x its value and n has reached
    its floor (and min_runs and min_s are met), or max_s has passed; (latencies in ms, wall s, stopping).

    The interval is checked every max(16, n/10) runs, past the timed region: the new runs are appended to a
    sorted copy and re-sorted (timsort merges the sorted run in linear time), then the binomial ranks are read.
    """
    floors = {p: max(mlperf_min_queries(p / 100.0), min_samples_for_percentile(p / 100.0, confidence))
              for p in percentiles}
    pc = clock
    lat: List[float] = []
    srt: List[float] = []
    widths: Dict[float, Optional[float]] = {}
    next_check, checks, reason = max(16, min_runs, max(floors.values())), 0, "max_s"
    start = pc()
    while True:
        t0 = pc()
        fn()
        t1 = pc()
        lat.append((t1 - t0) * 1e3)
        el = t1 - start
        if el >= max_s:
            break
        if len(lat) >= max_runs:
            reason = "max_runs"
            break
        if len(lat) >= next_check and el >= min_s:
            srt.extend(lat[len(srt):])
            srt.sort()
            checks += 1
            widths = {p: percentile_rel_width(srt, p, confidence) for p in percentiles}
            if all(w is not None and w <= rel_width for w in widths.values()):
                reason = "ci_width"
                break
            next_check = len(lat) + max(16, len(lat) // 10)
    if len(srt) != len(lat):
        srt = sorted(lat)
        widths = {p: percentile_rel_width(srt, p, confidence) for p in percentiles}
    return lat, el, {"stop_reason": reason, "runs": len(lat), "seconds": round(el, 4), "checks": checks,
                     "adaptive": True, "percentiles": list(percentiles), "rel_width": rel_width,
                     "confidence": confidence, "floors": {"p%g" % p: floors[p] for p in percentiles},
                     "rel_widths": {"p%g" % p: _finite(w, 6) for p, w in widths.items()}}


def _die_with_agent() -> None:
    """Linux: have the kernel SIGKILL this model process if the agent dies (even by SIGKILL): no orphans."""
    try:
        import ctypes  # the runtimes' numpy imports it anyway

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        return
    agent = os.environ.get("EDGEFARM_AGENT_PID", "")
    if agent.isdigit() and os.getppid() != int(agent):  # the agent was gone before the prctl
        os._exit(1)


def child_main(fd: int, raw_spec: str) -> int:
    _die_with_agent()
    out = os.fdopen(fd, "w")
    spec = json.loads(raw_spec)
    fmt = spec["format"]

    def phase(name: str) -> None:
        emit({"event": "phase", "phase": name, "t": time.monotonic(), "wall": time.time(),
              "cpu": time.process_time()}, out)

    def finish(status: str, message: Optional[str], **kw: Any) -> int:
        emit(dict({"event": "child_result", "status": status, "message": message}, **kw), out)
        # Skip interpreter and runtime teardown: nothing is measured after this, and a runtime that
        # crashes in its destructors must not turn a finished measurement into a crash.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    try:
        if spec["pin_cpus"]:
            try:
                os.sched_setaffinity(0, set(spec["pin_cpus"]))
            except (OSError, AttributeError) as e:
                return finish("error", "pin_cpus %s: cannot pin the model process (%s); CPUs here: %s"
                              % (spec["pin_cpus"], e, _cpus()))
        if spec["rlimit_as_mib"] is not None:
            import resource
            lim = int(spec["rlimit_as_mib"] * MIB)
            resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        try:
            backend = make_backend(spec)
        except ImportError as e:
            return finish(*_import_failure(fmt, e, spec["rlimit_as_mib"]))
        raw: Json = {}
        samples: Dict[str, List[float]] = {}
        before = proc_status()
        phase("load")
        t0 = time.perf_counter()
        backend.load()
        raw["load_time_ms"] = (time.perf_counter() - t0) * 1e3
        after = proc_status()
        if "VmRSS" in before and "VmRSS" in after:
            raw["load_footprint_mib"] = after["VmRSS"] - before["VmRSS"]
        raw["peak_rss_load_mib"] = after.get("VmHWM")
        raw["hwm_reset"] = bool(spec["reset_hwm"]) and "VmHWM" in after and reset_hwm()
        backend.prepare()
        phase("first")
        t0 = time.perf_counter()
        backend.run_once()
        raw["first_inference_ms"] = (time.perf_counter() - t0) * 1e3
        phase("warmup")
        timed_loop(backend.run_once, int(spec["warmup_runs"]), float(spec["warmup_min_s"]), float(spec["max_s"]))
        phase("measure")
        runs = int(spec["gguf"]["repetitions"]) if fmt == "gguf" else int(spec["min_runs"])
        if isinstance(backend, GgufBackend):
            backend.recording = True
        ad = spec.get("adaptive")
        if ad:
            lat, wall, stopping = adaptive_loop(backend.run_once, runs, float(spec["min_s"]), float(spec["max_s"]),
                                                ad["percentiles"], float(ad["rel_width"]), float(spec["confidence"]),
                                                max_runs=max(runs, int(spec["max_runs"])))
        else:
            lat, wall = timed_loop(backend.run_once, runs, float(spec["min_s"]), float(spec["max_s"]),
                                   max(runs, int(spec["max_runs"])))
            met = len(lat) >= runs and wall >= float(spec["min_s"])
            capped = not met and len(lat) >= int(spec["max_runs"])
            stopping = {"stop_reason": "max_runs" if capped else "min_runs_and_min_s" if met else "max_s",
                        "runs": len(lat),
                        "seconds": round(wall, 4), "adaptive": False}
        phase("done")
        samples["latency_ms"] = [round(x, 6) for x in lat]
        if isinstance(backend, GgufBackend):
            for k, v in backend.samples.items():
                samples[k] = [round(x, 6) for x in v]
        # Samples go out before the last VmHWM read, so the peak covers their encoding too and the
        # figure stays comparable with wait4()'s ru_maxrss.
        emit({"event": "child_samples", "samples": samples}, out)
        end = proc_status()
        raw["throughput_per_s"] = len(lat) / wall if wall > 0 else None
        raw["rss_anon_mib"], raw["rss_file_mib"] = end.get("RssAnon"), end.get("RssFile")
        if raw["hwm_reset"]:
            raw["peak_rss_inference_mib"] = end.get("VmHWM")
            raw["peak_rss_mib"] = max(end.get("VmHWM", 0.0), raw["peak_rss_load_mib"] or 0.0)
        else:
            raw["peak_rss_mib"] = end.get("VmHWM")
        return finish("ok", None, raw=raw, runtime=backend.runtime, stopping=stopping)
    except MemoryError as e:
        return finish("oom", "MemoryError: %s" % e)
    except Exception as e:  # a runtime raised: report it, the parent maps allocation failures to oom
        msg = "%s: %s" % (type(e).__name__, e)
        return finish("oom" if looks_like_oom(msg) else "error", msg[:2000])


def _reexec_compiled(args: List[str]) -> None:
    """Become the byte-compiled agent: same pid, but a process image that never compiled this source.

    ~4 MiB less resident memory while the agent waits, and a lower floor under the model process's ru_maxrss.
    """
    prog = _child_program()
    if prog.endswith(".pyc") and not os.path.abspath(__file__).endswith(".pyc"):
        try:
            os.execv(sys.executable, [sys.executable, prog] + args)
        except OSError:
            pass


def main(argv: Optional[List[str]] = None) -> int:
    """Dispatch a command; an unexpected exception is an agent bug: an error line, exit 3, traceback on stderr."""
    try:
        return _dispatch(argv)
    except Exception as e:
        import traceback

        traceback.print_exc()
        emit({"event": "error", "message": "agent bug: %s: %s" % (type(e).__name__, e)})
        return 3


def _dispatch(argv: Optional[List[str]]) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 1 and args[0] == "probe":
        return cmd_probe()
    if len(args) == 2 and args[0] == "hash":
        return cmd_hash(args[1])
    if len(args) == 2 and args[0] == "run":
        if argv is None:  # started as a program, not called in-process
            _reexec_compiled(args)
        return cmd_run(args[1])
    if len(args) == 3 and args[0] == "_child":
        return child_main(int(args[1]), args[2])
    emit({"event": "error", "message": "usage: agent.py probe | hash PATH | run SPEC_JSON (JSON text, a file, or -)"})
    return 2


if __name__ == "__main__":
    sys.exit(main())
