"""Strict, typed configuration: TOML tables into dataclasses.

An unknown key, a wrong type or a missing field is a ConfigError that names the file, the dotted key and
what was expected. Profiles, gate policies and suite headers all go through here.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from harness.errors import ConfigError

T = TypeVar("T")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, None, f"invalid TOML: {e}") from None


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
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, key, f"expected a number, got {type(value).__name__} {value!r}")
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
    for f in fields.values():
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            key = getattr(f, "metadata", {}).get("toml", f.name)
            dotted = f"{prefix}.{key}" if prefix else key
            raise ConfigError(path, dotted, f"missing required field (expected {_type_name(hints[f.name])})")
    return cls(**kwargs)
