"""Typed record classes without the dataclasses module.

`dataclasses` imports `inspect` (and ast, dis, tokenize...): ~1.5 MiB of resident memory in the agent process
that waits on the model, measured with benchmarks/agent_overhead.py. A record here declares its fields as
annotated class attributes with defaults, as a dataclass would; mutable defaults are copied per instance.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs the waiting agent ~0.6 MiB (benchmarks/agent_overhead.py)
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple, TypeVar

    R = TypeVar("R", bound="Fields")



def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    if isinstance(v, Fields):
        return type(v)(**{k: _copy(getattr(v, k)) for k in v.field_names()})
    return v


def _plain(v: Any) -> Any:
    """JSON-ready copy: records (also inside lists and dicts) as dicts."""
    if isinstance(v, Fields):
        return v.as_dict()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


class Fields:
    """Keyword construction, equality and repr from the class's annotated attributes, in declaration order."""

    def __init__(self, **kw: Any) -> None:
        names = self.field_names()
        unknown = sorted(set(kw) - set(names))
        if unknown:
            raise TypeError("%s: unknown field(s) %s" % (type(self).__name__, ", ".join(unknown)))
        for name in names:
            setattr(self, name, kw[name] if name in kw else _copy(getattr(type(self), name)))

    @classmethod
    def field_names(cls) -> List[str]:
        names: List[str] = []
        for klass in reversed(cls.__mro__):
            names += [n for n in klass.__dict__.get("__annotations__", {}) if n not in names]
        return names

    def items(self) -> List[Tuple[str, Any]]:
        """(name, value) of every field, in order."""
        return [(n, getattr(self, n)) for n in self.field_names()]

    def as_dict(self) -> Dict[str, Any]:
        """Every field as plain JSON-ready values (nested records as dicts), copied."""
        return {n: _plain(v) for n, v in self.items()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fields) and type(self) is type(other) and self.items() == other.items()

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % kv for kv in self.items()))

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq
