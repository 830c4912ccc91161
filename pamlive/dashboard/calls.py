"""What the dashboard knows about an event model's calls (bats): counts, not banners.

Bat passes come by the hundred, so calls raise no alarm: the dashboard counts them per
species (this minute, the last closed minute from ``summary.calls``, the whole run) and
lists the latest few. Free of rich, like ``state.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pamlive.alerts.schema import parse_utc

MAX_CALLS = 200  # latest calls kept for the list


@dataclass(frozen=True)
class CallRow:
    """One call as the list shows it."""

    start_utc: datetime
    species: str
    class_prob: float
    channel: int
    low_hz: float
    high_hz: float
    replayed: bool


@dataclass
class CallBoard:
    """Calls per species: in the newest UTC minute heard, in the last summary, in total."""

    latest: deque[CallRow] = field(default_factory=lambda: deque(maxlen=MAX_CALLS))
    total: dict[str, int] = field(default_factory=dict)
    max_prob: dict[str, float] = field(default_factory=dict)
    minute: datetime | None = None  # the UTC minute ``this_minute`` counts
    this_minute: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] | None = None  # the newest ``summary.calls`` body
    calls: int = 0
    seen: bool = False  # an event model's monitor: a call, a summary or a ``calls`` health
    channel_windows: dict[str, int] = field(default_factory=dict)  # network run / skipped
    activity_gate: float | None = None  # the monitor's gate level (None: off)

    def on_health(self, section: dict[str, Any]) -> None:
        """A health message's ``calls`` section: the network's share of channel-windows."""
        self.seen = True
        counts = section.get("channel_windows")
        if isinstance(counts, dict):
            self.channel_windows = {k: int(v) for k, v in counts.items()
                                    if k in ("run", "skipped") and isinstance(v, int)}
        gate = section.get("activity_gate")
        self.activity_gate = float(gate) if isinstance(gate, int | float) else None

    def network(self) -> str:
        """``network: 12 % of 340 windows (gate 0.95)``; empty before a count arrives (a
        monitor from before the gate sends none)."""
        run, skipped = self.channel_windows.get("run"), self.channel_windows.get("skipped")
        if run is None or skipped is None or run + skipped == 0:
            return ""
        gate = "gate off" if self.activity_gate is None else f"gate {self.activity_gate:g}"
        return f"network: {100 * run / (run + skipped):.0f} % of {run + skipped} windows ({gate})"

    def on_call(self, body: dict[str, Any], replayed: bool) -> None:
        row = CallRow(start_utc=parse_utc(body["start_utc"]), species=str(body["species"]),
                      class_prob=float(body["class_prob"]), channel=int(body["channel"]),
                      low_hz=float(body["low_hz"]), high_hz=float(body["high_hz"]),
                      replayed=replayed)
        self.seen = True
        self.calls += 1
        self.total[row.species] = self.total.get(row.species, 0) + 1
        self.max_prob[row.species] = max(self.max_prob.get(row.species, 0.0), row.class_prob)
        minute = row.start_utc.replace(second=0, microsecond=0)
        if self.minute is None or minute > self.minute:
            self.minute, self.this_minute = minute, {}
        if minute == self.minute:
            self.this_minute[row.species] = self.this_minute.get(row.species, 0) + 1
        self.latest.appendleft(row)

    def on_summary(self, body: dict[str, Any]) -> None:
        counts = body["counts"]
        if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
            raise ValueError("summary field 'counts' must map species to integers")
        start = parse_utc(body["start_utc"])
        self.seen = True
        if self.summary is None or start >= parse_utc(self.summary["start_utc"]):
            self.summary = body

    def species(self) -> list[str]:
        """Every species heard, the most counted first."""
        return sorted(self.total, key=lambda s: (-self.total[s], s))
