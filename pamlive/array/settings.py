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
from typing import Annotated, Literal

from pamlive.checks import Range, Section, build_section
from pamlive.errors import ConfigError


@dataclass(frozen=True)
class ArraySettings(Section):
    SECTION = "array"
    positions: list[list[float]] = field(default_factory=list)  # [x, y(, z)] m, channel order
    sound_speed: Annotated[float, Range(gt=0, unit=" m/s")] = 1500.0
    heading_source: Literal["none", "fixed", "nmea"] = "none"
    heading_deg: Annotated[float, Range(ge=0, lt=360)] | None = None
    min_confidence: Annotated[float, Range(ge=0, lt=1)] = 0.05
    queue: Annotated[int, Range(gt=0)] = 64
    focus_s: Annotated[float, Range(ge=0, unit=" s")] = 1.5  # 0: the whole detection
    min_channels: dict[str, Annotated[int, Range(ge=1)]] = field(default_factory=dict)
    tdoa_consistent: list[str] = field(default_factory=list)
    max_residual_ms: Annotated[float, Range(gt=0, unit=" ms")] = 2.0

    def rules(self) -> None:
        if len(self.positions) < 2 or not all(len(p) in (2, 3) for p in self.positions):
            raise ConfigError("[array] positions must list at least two [x, y] or [x, y, z] "
                              "element positions in metres, in channel order")
        if len({tuple(p) for p in self.positions}) < 2:
            raise ConfigError("[array] positions: the elements must not all be at one place")
        if self.heading_source == "fixed" and self.heading_deg is None:
            raise ConfigError("[array] heading_source = 'fixed' needs heading_deg")
        for cls, k in self.min_channels.items():
            if k > len(self.positions):
                raise ConfigError(f"[array] min_channels.{cls} must be 1..{len(self.positions)} "
                                  f"(the array's channels), got {k}")


def parse_array(table: dict[str, object] | None) -> ArraySettings | None:
    """The ``[array]`` table checked key by key; None when the section is absent."""
    return None if table is None else build_section(ArraySettings, table)
