"""Dataclasses to JSON and back, strictly: what ``results.json`` holds is read into the types of
``model`` and ``summary``, or refused with the place that does not fit.

Reading checks every value against its field's type (``int``, ``float``, ``str``, ``bool``,
``X | None``, ``list[X]``, ``dict[str, X]``, nested dataclasses and unions of these). A key the
type does not know is an error; a missing field takes its default, so files written before a
field was added still read. ``null`` in a ``float`` field reads as NaN: writing turns NaN (no
answer to measure) into ``null``, since strict JSON has no NaN.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")


class FormatError(ValueError):
    """A value in a results file that does not fit its declared type."""


def load(cls: type[T], data: object, where: str = "results") -> T:
    """``data`` (parsed JSON) as an instance of the dataclass ``cls``."""
    return typing.cast(T, _value(cls, data, where))


def dump(obj: object) -> Any:
    """A dataclass (or lists and dicts of them) as plain JSON data, NaN and infinity as null."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): dump(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [dump(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _dataclass(cls: type, data: object, where: str) -> object:
    if not isinstance(data, dict):
        raise FormatError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FormatError(f"{where}: unknown key(s) {', '.join(unknown)}")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _value(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FormatError(f"{where}: missing {name}")
    return cls(**values)


def _value(tp: Any, data: object, where: str) -> object:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _dataclass(typing.cast(type, tp), data, where)
    if origin in (Union, types.UnionType):
        return _union(typing.get_args(tp), data, where)
    if origin is list:
        if not isinstance(data, list):
            raise FormatError(f"{where}: expected a list, got {type(data).__name__}")
        (item,) = typing.get_args(tp)
        return [_value(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise FormatError(f"{where}: expected an object, got {type(data).__name__}")
        _, item = typing.get_args(tp)
        return {k: _value(item, v, f"{where}.{k}") for k, v in data.items()}
    return _scalar(tp, data, where)


def _union(arms: tuple[Any, ...], data: object, where: str) -> object:
    if data is None and type(None) in arms:
        return None
    errors = []
    for arm in arms:
        if arm is type(None):
            continue
        try:
            return _value(arm, data, where)
        except FormatError as exc:
            errors.append(str(exc))
    raise FormatError(errors[0] if len(errors) == 1 else f"{where}: fits none of {errors}")


def _scalar(tp: Any, data: object, where: str) -> object:
    if tp is float:
        if data is None:
            return math.nan
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
    elif tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif tp is bool or tp is str:
        if isinstance(data, tp):
            return data
    elif tp is type(None):
        if data is None:
            return None
    else:
        raise TypeError(f"{where}: no reader for {tp!r}")
    raise FormatError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {data!r:.80}")
