"""Strict, typed configuration: TOML tables into dataclasses.

An unknown key, a wrong type or a missing field is a ConfigError that names the file, the dotted key and
what was expected. Profiles, gate policies and suite headers all go through here.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from harness.errors import ConfigError

T = TypeVar("T")


class EnvStr(str):
    """A value filled in from "$VAR": it may stand for a number or a boolean, converted where the key wants one."""

    var: str = ""

    @classmethod
    def of(cls, value: str, var: str) -> EnvStr:
        s = cls(value)
        s.var = var
        return s


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric key, checked when the file loads (a list's or table's every value)."""

    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    why: str = ""  # e.g. "MiB of RAM": said in the error

    def problem(self, v: float) -> str | None:
        parts = []
        if self.gt is not None:
            parts.append(f"> {self.gt:g}")
        if self.ge is not None:
            parts.append(f">= {self.ge:g}")
        if self.le is not None:
            parts.append(f"<= {self.le:g}")
        ok = ((self.gt is None or v > self.gt) and (self.ge is None or v >= self.ge)
              and (self.le is None or v <= self.le))
        return None if ok else f"expected a number {' and '.join(parts)}{' (' + self.why + ')' if self.why else ''}, got {v:g}"


def bounded(default: Any = dataclasses.MISSING, *, gt: float | None = None, ge: float | None = None,
            le: float | None = None, why: str = "", toml: str | None = None) -> Any:
    """A dataclass field whose number(s) must lie in a range; parse_dataclass checks it."""
    meta: dict[str, Any] = {"range": Range(gt, ge, le, why)}
    if toml:
        meta["toml"] = toml
    if isinstance(default, (list, dict)):
        factory = default.copy
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; every way it can be unreadable is a ConfigError naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a TOML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, None, f"not UTF-8 text (byte {e.start}: {e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, None, f"invalid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(path, None, "nested too deeply to read") from None
    except OSError as e:
        raise ConfigError(path, None, f"cannot read: {e.strerror or e}") from None


def _from_env(path: Path, key: str, value: EnvStr, tp: Any) -> Any:
    """"$VAR" text for a number or boolean key: converted, or an error naming the variable."""
    text = value.strip()
    try:
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
    except ValueError:
        pass
    want = {int: "an integer", float: "a number"}.get(tp, "true or false")
    raise ConfigError(path, key, f"${value.var} is {str(value)!r}: expected {want}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"table of {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _convert(path: Path, key: str, value: Any, tp: Any) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        errors: list[ConfigError] = []
        for a in args:
            try:
                return _convert(path, key, value, a)
            except ConfigError as e:
                errors.append(e)
        if len(args) == 1:
            raise errors[0]
        raise ConfigError(path, key, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(path, key, f"expected one of {_type_name(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(path, key, f"expected {_type_name(tp)}, got {type(value).__name__}")
        (item,) = get_args(tp)
        return [_convert(path, f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, key, f"expected {_type_name(tp)}, got {type(value).__name__}")
        _, vt = get_args(tp)
        return {k: _convert(path, f"{key}.{k}", v, vt) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(path, key, f"expected a table, got {type(value).__name__}")
        return parse_dataclass(path, value, tp, prefix=key)  # type: ignore[arg-type]
    if tp in (int, float, bool) and isinstance(value, EnvStr):
        value = _from_env(path, key, value, tp)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, key, f"expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):  # TOML allows nan and inf; no setting here means either
            raise ConfigError(path, key, f"expected a finite number, got {value}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, key, f"expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(path, key, f"expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r}")  # a bug in our dataclass, not user input


def _check_range(path: Path, key: str, value: Any, f: dataclasses.Field[Any]) -> None:
    rng = f.metadata.get("range")
    if rng is None or value is None:
        return
    items: list[tuple[str, Any]] = [(key, value)]
    if isinstance(value, list):
        items = [(f"{key}[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        items = [(f"{key}.{k}", v) for k, v in value.items()]
    for k, v in items:
        problem = rng.problem(float(v))
        if problem:
            raise ConfigError(path, k, problem)


def parse_dataclass(path: Path, data: dict[str, Any], cls: type[T], *, prefix: str = "") -> T:
    """Build `cls` from a TOML table, strictly."""
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    aliases = {getattr(f, "metadata", {}).get("toml", f.name): f.name for f in fields.values()}
    kwargs: dict[str, Any] = {}
    for raw_key, value in data.items():
        dotted = f"{prefix}.{raw_key}" if prefix else raw_key
        name = aliases.get(raw_key)
        if name is None:
            close = difflib.get_close_matches(raw_key, list(aliases), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(aliases))}"
            raise ConfigError(path, dotted, "unknown key", hint=hint)
        kwargs[name] = _convert(path, dotted, value, hints[name])
        _check_range(path, dotted, kwargs[name], fields[name])
    for f in fields.values():
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            key = getattr(f, "metadata", {}).get("toml", f.name)
            dotted = f"{prefix}.{key}" if prefix else key
            raise ConfigError(path, dotted, f"missing required field (expected {_type_name(hints[f.name])})")
    return cls(**kwargs)


def cli_number(kind: type[int] | type[float], *, gt: float | None = None, ge: float | None = None,
               le: float | None = None, why: str = "") -> Callable[[str], float]:
    """An argparse `type=` for a flag's number: finite and within range, else argparse's one-line error (exit 2)."""
    rng = Range(gt, ge, le, why)

    def parse(text: str) -> float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        problem = rng.problem(float(v))
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def cli_json_object(text: str) -> dict[str, Any]:
    """An argparse `type=` for a JSON object flag (`--spec-json`): a bad one is argparse's one-line error."""
    import json

    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.__class__.__name__}: {str(e)[:120]})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{...}}, got {type(value).__name__}")
    return value


def cli_out_dir(text: str) -> str:
    """An argparse `type=` for an output directory: refused at once when a file (not a directory) is there."""
    p = Path(text)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            raise argparse.ArgumentTypeError(f"{q} is a file, not a directory")
        if q.is_dir():
            break
    return text
