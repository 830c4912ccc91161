"""The vessel's true heading from NMEA 0183 HDT/HDG sentences (parsed by ``pynmea2``).

A towed array trails behind the ship, so its +y axis points along the ship's heading;
true bearing = heading + bearing relative to the array. HDT gives the true heading;
HDG gives a magnetic one, corrected by its deviation and variation (east positive).
Heading sentences carry no time: they are stamped with the receiving clock.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

import pynmea2


def parse_heading(line: str) -> float | None:
    """True heading in degrees (0..360) from an HDT or HDG sentence, else None."""
    line = line.strip()
    if not line.startswith("$"):
        return None
    try:
        msg = pynmea2.parse(line, check=True)
        if msg.sentence_type == "HDT" and msg.heading not in (None, ""):
            return float(msg.heading) % 360.0
        if msg.sentence_type == "HDG" and msg.heading not in (None, ""):
            heading = float(msg.heading)
            for value, direction in ((msg.deviation, msg.dev_dir), (msg.variation, msg.var_dir)):
                if value not in (None, ""):
                    heading += float(value) * (-1.0 if direction == "W" else 1.0)
            return heading % 360.0
    except (pynmea2.ParseError, ValueError, TypeError, AttributeError):
        return None
    return None


class HeadingTrack:
    """Recent headings (bounded), looked up at a detection's UTC time."""

    def __init__(self, clock: Callable[[], float], max_age_s: float = 10.0,
                 max_entries: int = 3600) -> None:
        self._clock = clock
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self._times: list[float] = []
        self._headings: list[float] = []
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        """Take one NMEA line (any sentence; only HDT/HDG are used)."""
        heading = parse_heading(line)
        if heading is not None:
            self.add(self._clock(), heading)

    def add(self, t: float, heading: float) -> None:
        with self._lock:
            if self._times and t < self._times[-1]:
                return
            self._times.append(t)
            self._headings.append(heading)
            if len(self._times) > self.max_entries:
                del self._times[0], self._headings[0]

    def at(self, t: float) -> float | None:
        """The heading nearest in time to UTC ``t`` (epoch s), None if none is recent."""
        with self._lock:
            i = bisect.bisect_left(self._times, t)
            near = [k for k in (i - 1, i) if 0 <= k < len(self._times)]
            if not near:
                return None
            k = min(near, key=lambda k: abs(self._times[k] - t))
            return self._headings[k] if abs(self._times[k] - t) <= self.max_age_s else None
