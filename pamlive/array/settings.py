"""``[array]`` configuration: where the hydrophones are, and what the array must agree on.

::

    [array]
    positions = [[0, 0], [40, 0], [0, 40], [40, 40]]  # metres, channel order; z optional
    sound_speed = 1500.0
    heading_source = "fixed"        # none | fixed | nmea (HDT/HDG from the [position] feed)
    heading_deg = 0.0               # fixed: where the array's +y axis points (true)
    min_confidence = 0.05           # pairs below this GCC-PHAT peak are not used
    queue = 64                      # detections waiting for a bearing (full: dropped, counted)
    focus_s = 1.5                   # correlate the loudest in-band span this long (0: all)
    min_channels = { right_whale = 2 }       # k of n channels positive, per class
    tdoa_consistent = ["right_whale"]        # classes whose arrivals must fit one plane wave
    max_residual_ms = 2.0           # plane-wave misfit above which arrivals are inconsistent
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pamlive.errors import ConfigError

HEADING_SOURCES = ("none", "fixed", "nmea")


@dataclass(frozen=True)
class ArraySettings:
    positions: list[tuple[float, ...]]
    sound_speed: float = 1500.0
    heading_source: str = "none"
    heading_deg: float | None = None
    min_confidence: float = 0.05
    queue: int = 64
    focus_s: float = 1.5
    min_channels: dict[str, int] = field(default_factory=dict)
    tdoa_consistent: list[str] = field(default_factory=list)
    max_residual_ms: float = 2.0


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[array] {name} must be a number, got {value!r}")
    return float(value)


def parse_array(table: dict[str, Any] | None) -> ArraySettings | None:
    """The ``[array]`` table checked key by key; None when the section is absent."""
    if table is None:
        return None
    known = set(ArraySettings.__dataclass_fields__)
    for key in table:
        if key not in known:
            raise ConfigError(f"unknown setting [array] {key}")
    raw = table.get("positions")
    if not isinstance(raw, list) or len(raw) < 2 or not all(
            isinstance(p, list) and len(p) in (2, 3) for p in raw):
        raise ConfigError("[array] positions must list at least two [x, y] or [x, y, z] "
                          "element positions in metres, in channel order")
    positions = [tuple(_number(v, "positions") for v in p) for p in raw]
    if len(set(positions)) < 2:
        raise ConfigError("[array] positions: the elements must not all be at one place")
    values: dict[str, Any] = {"positions": positions}
    for name in ("sound_speed", "min_confidence", "focus_s", "max_residual_ms",
                 "heading_deg"):
        if name in table:
            values[name] = _number(table[name], name)
    if "queue" in table:
        q = table["queue"]
        if isinstance(q, bool) or not isinstance(q, int):
            raise ConfigError(f"[array] queue must be an integer, got {q!r}")
        values["queue"] = q
    source = table.get("heading_source", "none")
    if source not in HEADING_SOURCES:
        raise ConfigError(f"[array] heading_source must be none, fixed or nmea, got {source!r}")
    values["heading_source"] = source
    k = table.get("min_channels", {})
    if not isinstance(k, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in k.values()):
        raise ConfigError("[array] min_channels must map class names to channel counts")
    values["min_channels"] = {str(c): int(v) for c, v in k.items()}
    tdoa = table.get("tdoa_consistent", [])
    if not isinstance(tdoa, list) or not all(isinstance(c, str) for c in tdoa):
        raise ConfigError("[array] tdoa_consistent must be a list of class names")
    values["tdoa_consistent"] = list(tdoa)
    settings = ArraySettings(**values)
    _check(settings)
    return settings


def _check(s: ArraySettings) -> None:
    for name in ("sound_speed", "max_residual_ms", "queue"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"[array] {name} must be positive, got {getattr(s, name)}")
    if s.focus_s < 0:
        raise ConfigError(f"[array] focus_s must be >= 0 (0: the whole detection), got {s.focus_s}")
    if not 0.0 <= s.min_confidence < 1.0:
        raise ConfigError(f"[array] min_confidence must be in 0..1, got {s.min_confidence}")
    if s.heading_source == "fixed" and s.heading_deg is None:
        raise ConfigError("[array] heading_source = 'fixed' needs heading_deg")
    if s.heading_deg is not None and not 0.0 <= s.heading_deg < 360.0:
        raise ConfigError(f"[array] heading_deg must be in 0..360, got {s.heading_deg}")
    for cls, k in s.min_channels.items():
        if not 1 <= k <= len(s.positions):
            raise ConfigError(f"[array] min_channels.{cls} must be 1..{len(s.positions)} "
                              f"(the array's channels), got {k}")
