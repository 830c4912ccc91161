"""One checker for typed settings: types, finite numbers, ranges and choices.

A config section is a frozen dataclass whose fields say what they accept in their type:
``Annotated[float, Range(gt=0, le=600, unit=" s")]``, ``Literal["flac", "wav"]``,
``int | None``, ``list[Path]``, ``dict[str, Annotated[float, Range(ge=0, le=1)]]``.
:class:`Section` checks every field on construction (from TOML, from code, or by
``dataclasses.replace``), converts what is safe to convert (int -> float, str -> Path,
list -> tuple) and then runs the section's cross-field :meth:`Section.rules`. Every
problem is one :class:`~pamlive.errors.ConfigError` line naming ``[section] key``.
NaN and infinities are refused wherever a number is read.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

from pamlive.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """Bounds of a number (None: unbounded); ``unit`` is appended to the message."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    unit: str = ""

    def check(self, value: float, name: str) -> None:
        if self.ge is not None and self.le is not None:
            if not self.ge <= value <= self.le:
                raise ConfigError(f"{name} must be in {self.ge:g}..{self.le:g}{self.unit}, "
                                  f"got {value}")
            return
        for bound, ok, words in (
            (self.gt, lambda b: value > b, "positive" if self.gt == 0 else "> {b}"),
            (self.ge, lambda b: value >= b, ">= {b}"),
            (self.lt, lambda b: value < b, "< {b}"),
            (self.le, lambda b: value <= b, "at most {b}"),
        ):
            if bound is not None and not ok(bound):
                what = words.format(b=f"{bound:g}{self.unit}")
                raise ConfigError(f"{name} must be {what}, got {value}")


class _Mismatch(Exception):
    """The value is not of this type at all (a union tries its next member)."""


def finite(value: Any, name: str) -> float:
    """``value`` as a float if it is a finite number (not bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _describe(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is Literal:
        names = [str(a).lower() if isinstance(a, bool) else str(a) for a in args]  # TOML
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    if isinstance(tp, type) and issubclass(tp, Section):
        return "a table"
    if origin is tuple:
        return "a pair of numbers" if len(args) == 2 else f"{len(args)} numbers"
    return {bool: "true or false", int: "int", float: "a number", str: "a string",
            Path: "a path", list: "a list", dict: "a table"}.get(origin or tp, str(tp))


def check_value(tp: Any, value: Any, name: str) -> Any:
    """``value`` checked against the type ``tp`` (and converted), or a ConfigError."""
    try:
        return _check(tp, value, name)
    except _Mismatch:
        raise ConfigError(f"{name} must be {_describe(tp)}, got {value!r}") from None


def _check(tp: Any, value: Any, name: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        out = _check(args[0], value, name)
        for meta in args[1:]:
            if isinstance(meta, Range):
                meta.check(out, name)
        return out
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for member in args:
            if member is type(None):
                continue
            try:
                return _check(member, value, name)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and bool not in map(type, args)):
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch
        return finite(value, name)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value).expanduser()
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _Mismatch
        return tuple(check_value(a, v, name) for a, v in zip(args, value, strict=True))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        return [check_value(args[0], v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        return {str(k): check_value(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Section):  # a table inside a table
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch
        return build_section(tp, value)
    raise TypeError(f"checks: no rule for the type {tp!r} of {name}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _holds_path(tp: Any) -> bool:
    return tp is Path or any(_holds_path(a) for a in typing.get_args(tp))


def path_fields(cls: type) -> list[str]:
    """Names of the fields holding a path or a list of paths (resolved by the loader)."""
    hints = _hints(cls)
    return [f.name for f in fields(cls) if _holds_path(hints[f.name])]


class Section:
    """Base of the config sections (frozen dataclasses); ``SECTION`` is its TOML table."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = check_value(hints[f.name], getattr(self, f.name), f"[{self.SECTION}] {f.name}")
            object.__setattr__(self, f.name, value)
        self.rules()

    def rules(self) -> None:
        """Checks across the fields of this section (after each field passed its own)."""


S = TypeVar("S", bound=Section)


def build_section(cls: type[S], table: Mapping[str, Any] | None) -> S:
    """``cls(**table)`` after refusing keys ``cls`` does not have."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in table or {}:
        if key not in known:
            raise ConfigError(f"unknown setting [{cls.SECTION}] {key}")
    return cls(**dict(table or {}))
