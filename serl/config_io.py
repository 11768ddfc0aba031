"""Typed configs back from the JSON a run folder keeps (`config.json`), so a run can be evaluated or inspected
without knowing which task file and overrides made it."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild dataclass `cls` from `dataclasses.asdict`-style data (lists become tuples where typed so)."""
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _value(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def _value(tp: Any, value: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _value(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in value)
        return tuple(_value(a, v) for a, v in zip(args, value, strict=True)) if args else tuple(value)
    return value
