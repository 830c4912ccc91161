"""Parse a config table (``[watchdog]``, ``[clips]``, ...) into a frozen dataclass.

The core config keeps the field-operation sections as plain tables; each module owns
its dataclass and validates it here, with the same one-line errors as the core config.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from pamlive.errors import ConfigError

T = TypeVar("T")

_ACCEPTED: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "float | None": (int, float),
    "str": (str,),
    "str | None": (str,),
    "int | None": (int,),
}


def parse_section(cls: type[T], table: dict[str, Any] | None, section: str) -> T:
    """``cls(**table)`` after checking every key and type; names the offending key."""
    known = {f.name: str(f.type) for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in (table or {}).items():
        name = f"[{section}] {key}"
        if key not in known:
            raise ConfigError(f"unknown setting {name}")
        accepted = _ACCEPTED[known[key]]
        if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
            kinds = " or ".join(t.__name__ for t in accepted)
            raise ConfigError(f"{name} must be {kinds}, got {value!r}")
        if float in accepted and isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        values[key] = value
    settings = cls(**values)
    check = getattr(settings, "check", None)
    if check is not None:
        check(section)
    return settings


def require_positive(value: float | int | None, name: str) -> None:
    """One-line error for a value that must be > 0 (None means 'off' and passes)."""
    if value is not None and value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
