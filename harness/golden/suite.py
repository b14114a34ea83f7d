"""The golden suite format (JSONL) and its strict validator. The format is documented in golden/README.md.

Line 1 may be a header (`{"schema": "edgefarm.golden/1", ...}`); every other non-blank line is one item.
Every problem names the file, the line and the key, e.g. `suite.jsonl:12: key 'criterion.min_simlarity':
unknown key (did you mean 'min_similarity'?)`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harness.config import parse_dataclass
from harness.errors import ConfigError, UserError

SCHEMA = "edgefarm.golden/1"
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")
TEXT_MEASURES = ("min_similarity", "min_chrf", "min_rouge_l")


@dataclass(frozen=True)
class Generation:
    """How a text item is generated: greedy (temperature 0) unless told otherwise, seeded, bounded."""

    max_tokens: int = 24
    temperature: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Criterion:
    """What passing means. Text items: any of the min_* measures (all given must hold); tensors: atol/rtol."""

    min_similarity: float | None = None  # embedding cosine, all-MiniLM-L6-v2
    min_chrf: float | None = None  # chrF, 0..1
    min_rouge_l: float | None = None  # ROUGE-L F1, 0..1
    atol: float | None = None
    rtol: float | None = None
    logits_atol: float | None = None  # GGUF: next-token logits at the teacher's top tokens (needs reference_logits)


@dataclass(frozen=True)
class Logits:
    """The teacher's next-token logits after the prompt, at its most likely token ids (recorded by `record`)."""

    ids: list[int]
    values: list[float]


@dataclass(frozen=True)
class Tensor:
    """A tensor written out in the suite: row-major flat `values`, or (inputs only) a seeded random fill."""

    dtype: str
    shape: list[int]
    values: list[float | bool] | None = None
    seed: int | None = None  # standard normal for floats, uniform integers in [low, high) otherwise
    low: int = 0
    high: int = 100

    def array(self) -> npt.NDArray[Any]:
        """The tensor as a numpy array of its dtype and shape."""
        if self.values is not None:
            return np.asarray(self.values, dtype=np.float64).astype(self.dtype).reshape(self.shape)
        rng = np.random.default_rng(self.seed)
        if np.issubdtype(np.dtype(self.dtype), np.floating):
            return rng.standard_normal(self.shape).astype(self.dtype)
        return rng.integers(self.low, self.high, size=self.shape).astype(self.dtype)

    @classmethod
    def of(cls, a: npt.NDArray[Any]) -> Tensor:
        """Record an array exactly: each value as the shortest decimal that reads back to the same value in
        the array's own dtype (numpy's repr of a float32 scalar), so float32 needs ~9 digits, not 17."""
        flat = a.ravel()
        vals: list[float | bool]
        if a.dtype == np.bool_:
            vals = [bool(v) for v in flat]
        elif np.issubdtype(a.dtype, np.floating):
            vals = [float(str(v)) for v in flat]
        else:
            vals = [float(v) for v in flat]
        return cls(dtype=str(a.dtype), shape=[int(s) for s in a.shape], values=vals)


@dataclass(frozen=True)
class Teacher:
    """Where the references came from (written by `record`)."""

    kind: Literal["artifact", "callable"]
    ref: str  # artifact path or "module:function"
    sha256: str | None = None
    recorded_at: str | None = None
    harness_version: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Defaults:
    criterion: dict[str, Any] = field(default_factory=dict)  # checked as Criterion / Generation
    generation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Header:
    schema: str
    name: str = ""
    description: str = ""
    min_pass_rate: float = 0.9  # the run fails below this share of passing items (and on any tier-1 failure)
    defaults: Defaults = field(default_factory=Defaults)
    teacher: Teacher | None = None


@dataclass(frozen=True)
class _RawItem:
    id: str
    prompt: str | None = None
    input: dict[str, Tensor] | None = None
    reference: str | dict[str, Tensor] | None = None
    reference_logits: Logits | None = None
    criterion: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    generation: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True)
class Item:
    """One golden item, validated, with the header defaults applied."""

    id: str
    line: int
    criterion: Criterion
    generation: Generation
    prompt: str | None = None
    input: dict[str, Tensor] | None = None
    reference: str | dict[str, Tensor] | None = None
    reference_logits: Logits | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None

    @property
    def kind(self) -> Literal["text", "tensor"]:
        return "text" if self.prompt is not None else "tensor"

    def to_dict(self) -> dict[str, Any]:
        """The item as a suite line (defaults folded in, so a line stands on its own)."""
        d: dict[str, Any] = {"id": self.id}
        if self.prompt is not None:
            d["prompt"] = self.prompt
        if self.input is not None:
            d["input"] = {k: _tensor_dict(v) for k, v in self.input.items()}
        if isinstance(self.reference, str):
            d["reference"] = self.reference
        elif self.reference is not None:
            d["reference"] = {k: _tensor_dict(v) for k, v in self.reference.items()}
        if self.reference_logits is not None:
            d["reference_logits"] = asdict(self.reference_logits)
        d["criterion"] = {k: v for k, v in asdict(self.criterion).items() if v is not None}
        d["tags"] = list(self.tags)
        if self.kind == "text":
            d["generation"] = asdict(self.generation)
        if self.note:
            d["note"] = self.note
        return d


def _tensor_dict(t: Tensor) -> dict[str, Any]:
    return {k: v for k, v in asdict(t).items() if v is not None and not (k in ("low", "high") and t.seed is None)}


@dataclass
class Suite:
    path: Path
    header: Header
    items: list[Item]

    @property
    def kind(self) -> Literal["text", "tensor", "mixed", "empty"]:
        kinds = {i.kind for i in self.items}
        if not kinds:
            return "empty"
        return "mixed" if len(kinds) > 1 else next(iter(kinds))


class SuiteInvalid(UserError):
    """A suite file with problems; `problems` holds each as a ConfigError naming file:line and key."""

    def __init__(self, path: Path, problems: list[ConfigError]) -> None:
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} problem(s) in the golden suite:\n  {shown}{more}")
        self.problems = problems


def _check_tensor(where: str, key: str, t: Tensor, *, is_input: bool) -> list[ConfigError]:
    errs: list[ConfigError] = []
    if t.dtype not in DTYPES:
        errs.append(ConfigError(where, f"{key}.dtype", f"unknown dtype {t.dtype!r}; expected one of {', '.join(DTYPES)}"))
    if any(s < 0 for s in t.shape):
        errs.append(ConfigError(where, f"{key}.shape", f"dimensions must be >= 0, got {t.shape}"))
    if t.values is None and (t.seed is None or not is_input):
        need = "'values'" if not is_input else "'values' or 'seed'"
        errs.append(ConfigError(where, key, f"missing {need}"))
    if t.values is not None and len(t.values) != math.prod(t.shape):
        errs.append(ConfigError(where, f"{key}.values",
                                f"{len(t.values)} values for shape {t.shape} ({math.prod(t.shape)} expected)"))
    return errs


def _item(where: str, line: int, raw: _RawItem, defaults: Defaults, require_reference: bool) -> tuple[Item | None,
                                                                                                   list[ConfigError]]:
    errs: list[ConfigError] = []
    if not raw.id.strip():
        errs.append(ConfigError(where, "id", "must not be empty"))
    if (raw.prompt is None) == (raw.input is None):
        errs.append(ConfigError(where, "prompt", "give exactly one of 'prompt' (text models) or 'input' (tensors)"))
        return None, errs
    crit = parse_dataclass(Path(where), {**defaults.criterion, **raw.criterion}, Criterion, prefix="criterion")
    gen = parse_dataclass(Path(where), {**defaults.generation, **raw.generation}, Generation, prefix="generation")
    text = raw.prompt is not None
    if raw.reference is None:
        if require_reference:
            errs.append(ConfigError(where, "reference", "missing reference (record one with `edgefarm golden record`)"))
    elif text and not isinstance(raw.reference, str):
        errs.append(ConfigError(where, "reference", "a text item's reference must be a string"))
    elif not text and isinstance(raw.reference, str):
        errs.append(ConfigError(where, "reference", "a tensor item's reference must be a table of output tensors"))
    for name in TEXT_MEASURES:
        v = getattr(crit, name)
        if v is not None and not text:
            errs.append(ConfigError(where, f"criterion.{name}", "applies to text items only; tensors use atol/rtol"))
        if v is not None and not -1.0 <= v <= 1.0:
            errs.append(ConfigError(where, f"criterion.{name}", f"must be between 0 and 1, got {v}"))
    if crit.logits_atol is not None and not text:
        errs.append(ConfigError(where, "criterion.logits_atol", "applies to text (GGUF) items only"))
    if crit.logits_atol is not None and crit.logits_atol < 0:
        errs.append(ConfigError(where, "criterion.logits_atol", f"must be >= 0, got {crit.logits_atol}"))
    if text and crit.logits_atol is not None and raw.reference_logits is None and require_reference:
        errs.append(ConfigError(where, "reference_logits", "missing: criterion.logits_atol needs the teacher's "
                                "logits (record them with `edgefarm golden record` from a GGUF teacher)"))
    if raw.reference_logits is not None and len(raw.reference_logits.ids) != len(raw.reference_logits.values):
        errs.append(ConfigError(where, "reference_logits", "'ids' and 'values' differ in length"))
    for name in ("atol", "rtol"):
        v = getattr(crit, name)
        if v is not None and text:
            errs.append(ConfigError(where, f"criterion.{name}", "applies to tensor items only"))
        if v is not None and v < 0:
            errs.append(ConfigError(where, f"criterion.{name}", f"must be >= 0, got {v}"))
    if text and all(getattr(crit, m) is None for m in TEXT_MEASURES):
        errs.append(ConfigError(where, "criterion", f"a text item needs at least one of {', '.join(TEXT_MEASURES)}"))
    if not text and crit.atol is None and crit.rtol is None:
        errs.append(ConfigError(where, "criterion", "a tensor item needs atol and/or rtol"))
    if gen.max_tokens < 1:
        errs.append(ConfigError(where, "generation.max_tokens", f"must be >= 1, got {gen.max_tokens}"))
    if gen.temperature < 0:
        errs.append(ConfigError(where, "generation.temperature", f"must be >= 0, got {gen.temperature}"))
    for name, t in (raw.input or {}).items():
        errs += _check_tensor(where, f"input.{name}", t, is_input=True)
    if isinstance(raw.reference, dict):
        for name, t in raw.reference.items():
            errs += _check_tensor(where, f"reference.{name}", t, is_input=False)
    if errs:
        return None, errs
    return Item(id=raw.id, line=line, criterion=crit, generation=gen, prompt=raw.prompt, input=raw.input,
                reference=raw.reference, reference_logits=raw.reference_logits, tags=tuple(raw.tags),
                note=raw.note), []


def parse_suite(path: Path, *, require_reference: bool = True) -> tuple[Suite, list[ConfigError]]:
    """Read a suite and collect every problem (does not raise for problems in the file's content)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: golden suite not found") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e})") from None
    header = Header(schema=SCHEMA)
    items: list[Item] = []
    errs: list[ConfigError] = []
    seen: dict[str, int] = {}
    first = True
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            errs.append(ConfigError(where, None, f"not valid JSON ({e.msg} at column {e.colno})"))
            first = False
            continue
        except RecursionError:  # a hostile line of 100k nested arrays: named, not a traceback
            errs.append(ConfigError(where, None, "JSON nested too deeply to read"))
            first = False
            continue
        if not isinstance(obj, dict):
            errs.append(ConfigError(where, None, f"expected a JSON object, got {type(obj).__name__}"))
            first = False
            continue
        try:
            if first and "schema" in obj:
                header = parse_dataclass(Path(where), obj, Header)
                parse_dataclass(Path(where), header.defaults.criterion, Criterion, prefix="defaults.criterion")
                parse_dataclass(Path(where), header.defaults.generation, Generation, prefix="defaults.generation")
                if not 0.0 <= header.min_pass_rate <= 1.0:
                    errs.append(ConfigError(where, "min_pass_rate", f"must be between 0 and 1, got {header.min_pass_rate}"))
                if header.schema != SCHEMA:
                    errs.append(ConfigError(where, "schema", f"this edgefarm reads {SCHEMA!r}, got {header.schema!r}"))
                first = False
                continue
            first = False
            raw = parse_dataclass(Path(where), obj, _RawItem)
            item, item_errs = _item(where, n, raw, header.defaults, require_reference)
        except ConfigError as e:
            errs.append(e)
            continue
        errs += item_errs
        if raw.id in seen:
            errs.append(ConfigError(where, "id", f"duplicate id {raw.id!r} (first on line {seen[raw.id]})"))
            continue
        seen[raw.id] = n
        if item is not None:
            items.append(item)
    if not items and not errs:
        errs.append(ConfigError(path, None, "the suite has no items"))
    return Suite(path=path, header=header, items=items), errs


def load_suite(path: Path, *, require_reference: bool = True) -> Suite:
    """Read and validate a suite; raise SuiteInvalid listing every problem."""
    suite, errs = parse_suite(path, require_reference=require_reference)
    if errs:
        raise SuiteInvalid(path, errs)
    return suite


def write_suite(path: Path, header: Header, items: list[Item]) -> None:
    """Write a suite: the header line, then one item per line (atomically, via a temporary file).

    Criterion and generation keys equal to the header's defaults are left out of the item lines.
    """
    gen_defaults = {**asdict(Generation()), **header.defaults.generation}
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        hd = asdict(header)
        if hd.get("teacher"):
            hd["teacher"] = {k: v for k, v in hd["teacher"].items() if v is not None}
        else:
            hd.pop("teacher", None)
        fh.write(json.dumps(hd, ensure_ascii=False) + "\n")
        for it in items:
            d = it.to_dict()
            for key, defaults in (("criterion", header.defaults.criterion), ("generation", gen_defaults)):
                if key in d:
                    d[key] = {k: v for k, v in d[key].items() if defaults.get(k, object()) != v}
                    if not d[key]:
                        del d[key]
            fh.write(json.dumps(d, ensure_ascii=False, allow_nan=False) + "\n")
    tmp.replace(path)
