"""The key figures of a cell (device x artifact), defined once: every printer takes its columns from here.

llama-bench declares its record's fields once and prints them as csv, json, jsonl and markdown; so does this
module: COLUMNS says what each column is and how its cell is computed from a Record. The terminal table,
`edgefarm run -o`, the Markdown summary, the HTML report, the JUnit properties and `edgefarm compare` all
read KeyRow objects built here. A figure that is not claimed says why ("not claimed: n=12 < 72 for p95"),
never a bare dash.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.metrics import METRICS
from harness.records import Record
from harness.reports.escape import term

OutFormat = Literal["table", "md", "csv", "json", "jsonl"]
OUT_FORMATS: tuple[str, ...] = ("table", "md", "csv", "json", "jsonl")


@dataclass(frozen=True)
class Fig:
    """One cell of the table: a number (or None) and the text a reader sees, with the reason when absent."""

    value: float | None
    text: str
    ci: tuple[float, float] | None = None
    why: str | None = None  # why no value / no interval is claimed

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": _finite(self.value), "text": self.text}
        if self.ci is not None:
            d["ci"] = [_finite(self.ci[0]), _finite(self.ci[1])]
        if self.why:
            d["why"] = self.why
        return d


def _finite(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return None if math.isnan(x) else ("inf" if x > 0 else "-inf")


def num(x: float | None) -> str:
    """3-4 significant digits, no unit: 0.0452, 12.3, 1234."""
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "unbounded"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1000:
        return f"{x:.0f}"
    return f"{x:.3g}" if a < 1 else f"{x:.4g}" if a < 100 else f"{x:.1f}"


_NEED = re.compile(r"n=(\d+) < (\d+) needed")


def _text(t: str) -> Fig:
    return Fig(None, t)


def is_llm(rec: Record) -> bool:
    return rec.artifact.format == "gguf" or "decode_tokens_per_s" in rec.metrics or "itl_ms" in rec.samples


def _series(rec: Record) -> str:
    """Which sample series the percentile columns describe: warm latency, or inter-token latency for an LLM."""
    if is_llm(rec) and ("itl_ms" in rec.samples or any(k.startswith("itl_ms_") for k in rec.metrics)):
        return "itl_ms"  # an LLM's per-request latency has one sample per repetition; its tokens are the n
    return "latency_ms"


def _metric_fig(rec: Record, name: str, absent: str = "not measured") -> Fig:
    """A metric's value with its interval; its note (or `absent`) where the record claims no value."""
    if rec.status != "ok" and name not in rec.metrics:
        return Fig(None, f"no figure: run {rec.status}", why=f"run {rec.status}")
    m = rec.metrics.get(name)
    if m is None:
        return Fig(None, absent, why=absent)
    if m.value is None:
        why = m.note or "no value recorded"
        short = _NEED.search(why)  # the agent's "insufficient samples: n=12 < 72 needed for p95 at 95% ..."
        return Fig(None, f"not claimed: n={short.group(1)} < {short.group(2)} needed" if short else
                   f"not claimed: {why}", why=why)
    if m.ci is not None:
        return Fig(m.value, f"{num(m.value)} [{num(m.ci[0])}, {num(m.ci[1])}]", m.ci)
    return Fig(m.value, num(m.value), why=m.note)


def _pct(p: int) -> Callable[[Record], Fig]:
    def get(rec: Record) -> Fig:
        s = _series(rec)
        f = _metric_fig(rec, f"{s}_p{p}")
        if f.value is not None and f.ci is None and f.why is None and (rec.metrics[f"{s}_p{p}"].n or 0) > 0:
            return Fig(f.value, f.text + " (no interval)", None, "no interval recorded")
        return f
    return get


def _n(rec: Record) -> Fig:
    if is_llm(rec):
        reps = len(rec.samples.get("ttft_ms") or rec.samples.get("decode_tokens_per_s") or [])
        toks = len(rec.samples.get("itl_ms") or [])
        if reps or toks:
            return Fig(float(reps), f"{reps} rep{'s' if reps != 1 else ''}, {toks} tokens")
    n = len(rec.samples.get("latency_ms") or [])
    if n:
        return Fig(float(n), str(n))
    m = rec.metrics.get("latency_ms_p50")
    return Fig(float(m.n), str(m.n)) if m and m.n else Fig(None, f"no samples: run {rec.status}" if rec.status != "ok"
                                                           else "no samples", why="no samples")


def _size(rec: Record) -> Fig:
    mib = rec.artifact.size_bytes / 2**20
    return Fig(mib, f"{num(mib)} MiB")


def _runtime(rec: Record) -> Fig:
    rt = rec.runtime or {}
    name, ver = rt.get("name"), rt.get("version")
    if not name:
        return _text("not recorded")
    build = rt.get("build") or rt.get("build_commit")
    return _text(term(" ".join(str(x) for x in (name, ver, f"({build})" if build else None) if x)))


def _backend(rec: Record) -> Fig:
    for src in (rec.runtime, rec.provenance.extra, rec.workload):
        v = (src or {}).get("backend") or (src or {}).get("providers") or (src or {}).get("delegate")
        if v:
            return _text(term(", ".join(map(str, v)) if isinstance(v, list) else str(v)))
    return _text("not recorded (runtime default)")


def _threads(rec: Record) -> Fig:
    for src in (rec.provenance.extra, rec.workload, rec.runtime):
        v = (src or {}).get("threads_used") or (src or {}).get("threads")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return Fig(float(v), str(int(v)))
    return _text("runtime default")


def _peak(load: bool) -> Callable[[Record], Fig]:
    def get(rec: Record) -> Fig:
        name = "peak_rss_load_mib" if load else "peak_rss_inference_mib"
        if name not in rec.metrics and "peak_rss_mib" in rec.metrics and rec.status != "ok":
            f = _metric_fig(rec, "peak_rss_mib")
            return Fig(f.value, f"{f.text} (whole run, at {rec.status})", why=f.why)
        if name not in rec.metrics and not load and rec.status == "ok":
            return _metric_fig(rec, "peak_rss_mib", "not measured (no clear_refs on the device)")
        return _metric_fig(rec, name)
    return get


def _rate(rec: Record) -> Fig:
    if is_llm(rec):
        pp, tg = _metric_fig(rec, "prefill_tokens_per_s"), _metric_fig(rec, "decode_tokens_per_s")
        return Fig(tg.value, f"pp {pp.text} / tg {tg.text} tok/s", tg.ci, tg.why)
    f = _metric_fig(rec, "throughput_per_s")
    return Fig(f.value, f"{f.text} inf/s" if f.value is not None else f.text, f.ci, f.why)


def _ttft(rec: Record) -> Fig:
    return _metric_fig(rec, "ttft_ms") if is_llm(rec) else _text("n/a (not an LLM)")


def _energy(rec: Record) -> Fig:
    name = "energy_j_per_token" if is_llm(rec) else "energy_j_per_inference"
    if name in rec.metrics:
        f = _metric_fig(rec, name)
        return Fig(f.value, f"{f.text} J/{'token' if is_llm(rec) else 'inference'}", f.ci, f.why)
    why = (rec.energy or {}).get("why") or (rec.energy or {}).get("message")
    return _text(f"not measured: {term(str(why))}" if why else "not measured (no meter)")


@dataclass(frozen=True)
class Column:
    """One key figure: its name in csv/json, its header, its unit, how it is computed, which way is better."""

    key: str
    header: str
    unit: str
    get: Callable[[Record], Fig]
    better: Literal["lower", "higher", ""] = ""
    definition: str = ""


def _def(metric: str) -> str:
    return METRICS[metric].definition if metric in METRICS else ""


COLUMNS: tuple[Column, ...] = (
    Column("format", "format", "", lambda r: _text(term(r.artifact.format))),
    Column("model_mib", "model size", "MiB", _size, "lower", "Size of the artifact file."),
    Column("runtime", "runtime", "", _runtime),
    Column("backend", "backend", "", _backend),
    Column("threads", "threads", "", _threads),
    Column("n", "n", "", _n, "", "Measured warm runs (LLM: repetitions and decoded tokens)."),
    Column("p50_ms", "p50 ms", "ms", _pct(50), "lower", _def("latency_ms_p50")),
    Column("p95_ms", "p95 ms", "ms", _pct(95), "lower", _def("latency_ms_p95")),
    Column("p99_ms", "p99 ms", "ms", _pct(99), "lower", _def("latency_ms_p99")),
    Column("peak_load_mib", "peak load MiB", "MiB", _peak(True), "lower", _def("peak_rss_load_mib")),
    Column("peak_inference_mib", "peak infer MiB", "MiB", _peak(False), "lower", _def("peak_rss_inference_mib")),
    Column("load_ms", "load ms", "ms", lambda r: _metric_fig(r, "load_time_ms"), "lower", _def("load_time_ms")),
    Column("first_inference_ms", "first inf ms", "ms", lambda r: _metric_fig(r, "first_inference_ms"), "lower",
           _def("first_inference_ms")),
    Column("rate", "throughput", "1/s", _rate, "higher",
           "Inferences per second; for an LLM prefill (pp) / decode (tg) tokens per second."),
    Column("ttft_ms", "TTFT ms", "ms", _ttft, "lower", _def("ttft_ms")),
    Column("energy", "energy", "J", _energy, "lower", "Energy per inference (LLM: per token), idle subtracted."),
)
BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}


@dataclass
class KeyRow:
    """The key figures of one cell; `base` and `change` are filled where a baseline record exists."""

    device: str
    artifact: str
    status: str
    verdict: str  # the gate's outcome, or "not gated" / the run status
    figs: dict[str, Fig]
    base: dict[str, Fig] = field(default_factory=dict)
    change: dict[str, float] = field(default_factory=dict)  # key -> % (+ is a higher number)
    series: str = "latency_ms"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"device": self.device, "artifact": self.artifact, "status": self.status,
                             "verdict": self.verdict, "latency_series": self.series}
        for k, f in self.figs.items():
            d[k] = f.to_dict()
            if k in self.base:
                d[k]["baseline"] = self.base[k].to_dict()
            if k in self.change:
                d[k]["change_pct"] = round(self.change[k], 3)
        return d


def key_row(rec: Record, baseline: Record | None = None, verdict: str | None = None) -> KeyRow:
    """The key figures of one record, beside its baseline's where one is given."""
    figs = {c.key: c.get(rec) for c in COLUMNS}
    row = KeyRow(term(rec.device.name), term(rec.artifact.name), rec.status,
                 verdict or ("not gated" if rec.status == "ok" else rec.status), figs, series=_series(rec))
    if baseline is not None:
        for c in COLUMNS:
            if not c.better:
                continue
            b = c.get(baseline)
            row.base[c.key] = b
            now = figs[c.key].value
            if b.value is not None and now is not None and b.value != 0:
                row.change[c.key] = 100.0 * (now - b.value) / abs(b.value)
    return row


def key_rows(records: Iterable[Record], baseline: Sequence[Record] = (),
             verdicts: dict[tuple[str, str], str] | None = None) -> list[KeyRow]:
    """One KeyRow per record, matched with the baseline record of the same (device, artifact)."""
    base = {r.key: r for r in baseline}
    return [key_row(r, base.get(r.key), (verdicts or {}).get(r.key)) for r in records]


def cell_text(row: KeyRow, key: str) -> str:
    """A cell as printed: the figure, then the baseline's and the change where there is a baseline."""
    f = row.figs[key]
    b = row.base.get(key)
    if b is None or (b.value is None and (f.value is None or b.text == f.text)):
        return f.text
    ch = row.change.get(key)
    return f"{f.text} (base {b.text}{'' if ch is None else f', {ch:+.1f}%'})"


def _table(rows: list[KeyRow], per_block: int = 4) -> str:
    """Transposed fixed-width table: a line per figure, a column per cell (fits a terminal for a few cells)."""
    out: list[str] = []
    for start in range(0, len(rows), per_block):
        block = rows[start:start + per_block]
        labels = ["device", "artifact", "status"] + [c.header for c in COLUMNS] + ["verdict"]
        cols = [[r.device, r.artifact, r.status] + [cell_text(r, c.key) for c in COLUMNS] + [r.verdict]
                for r in block]
        if any(r.series == "itl_ms" for r in block):
            labels[labels.index("p50 ms")] += " *"
        lw = max(len(x) for x in labels)
        widths = [min(max(len(x) for x in col), 60) for col in cols]
        for i, lab in enumerate(labels):
            cells = [col[i] if len(col[i]) <= 60 else col[i][:57] + "..." for col in cols]
            out.append(f"{lab:<{lw}}  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
            if i == 2:
                out.append("-" * lw + "  " + "  ".join("-" * w for w in widths))
        out.append("")
    if any(r.series == "itl_ms" for r in rows):
        out.append("* p50/p95/p99 of an LLM cell are of its inter-token latency (decode), not of whole requests")
    return "\n".join(out).rstrip() + "\n"


def md_escape(x: object) -> str:
    """Safe in a GitHub Markdown table cell: no HTML, no pipes, no code spans, no emphasis, one line."""
    import html
    s = html.escape(term(str(x)), quote=True)
    for a, b in (("|", "&#124;"), ("`", "&#96;"), ("*", "&#42;"), ("_", "&#95;"), ("[", "&#91;"),
                 ("]", "&#93;"), ("\\", "&#92;")):
        s = s.replace(a, b)
    return s


def _md(rows: list[KeyRow]) -> str:
    head = ["device", "artifact"] + [c.header for c in COLUMNS] + ["verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.device, r.artifact] + [cell_text(r, c.key) for c in COLUMNS] + [r.verdict]
        lines.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[KeyRow]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["device", "artifact", "status", "verdict"]
    for c in COLUMNS:
        head += [c.key, f"{c.key}_text"]
        if c.better:
            head += [f"{c.key}_baseline", f"{c.key}_change_pct"]
    w.writerow(head)
    for r in rows:
        line: list[object] = [r.device, r.artifact, r.status, r.verdict]
        for c in COLUMNS:
            f = r.figs[c.key]
            line += ["" if f.value is None else f.value, f.text]
            if c.better:
                b = r.base.get(c.key)
                ch = r.change.get(c.key)
                line += ["" if b is None or b.value is None else b.value, "" if ch is None else round(ch, 3)]
        # a cell that starts with = + - @ would be a formula in a spreadsheet
        w.writerow([f"'{x}" if isinstance(x, str) and x[:1] in "=+-@" and x != "-" else x for x in line])
    return buf.getvalue()


def render_rows(rows: list[KeyRow], fmt: OutFormat) -> str:
    """The key figures in one of OUT_FORMATS (llama-bench's -o)."""
    if fmt == "table":
        return _table(rows)
    if fmt == "md":
        return _md(rows)
    if fmt == "csv":
        return _csv(rows)
    if fmt == "json":
        return json.dumps([r.to_dict() for r in rows], indent=1, allow_nan=False) + "\n"
    return "".join(json.dumps(r.to_dict(), separators=(",", ":"), allow_nan=False) + "\n" for r in rows)


def render_records(records: Sequence[Record], fmt: OutFormat, baseline: Sequence[Record] = ()) -> str:
    """What `edgefarm run -o FMT` prints: the key figures of the records just measured."""
    return render_rows(key_rows(records, baseline), fmt)
