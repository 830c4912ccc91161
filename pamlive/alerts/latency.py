"""Alert latency percentiles over a recent, bounded set of messages (for health).

``latency_ms`` of an alert is its publication time minus the arrival of the last sample
of the window that triggered it: the opening window for an onset, the closing window for
a detection. The health message reports p50/p95 over the last ``size`` alerts, overall
and for onsets (the first alert of a call: what a mitigation system acts on).
"""

from __future__ import annotations

from collections import deque

import numpy as np

ONSET = "onset"
DETECTION = "detection"


class LatencyTracker:
    """Keeps the last ``size`` latencies of each alert kind; not thread-safe (the bus
    locks around it)."""

    def __init__(self, size: int = 1000) -> None:
        self._all: deque[float] = deque(maxlen=size)
        self._onsets: deque[float] = deque(maxlen=size)

    def add(self, kind: str, latency_ms: float) -> None:
        self._all.append(latency_ms)
        if kind == ONSET:
            self._onsets.append(latency_ms)

    def summary(self) -> dict[str, float | int | None]:
        """Flat numbers (older readers check that every value is a number or null):
        ``last``, ``p50`` (also as ``median``, its older name), ``p95``, ``n``,
        ``onset_p50``, ``onset_p95``."""
        p50, p95 = _percentiles(self._all)
        onset_p50, onset_p95 = _percentiles(self._onsets)
        return {
            "last": self._all[-1] if self._all else None,
            "median": p50, "p50": p50, "p95": p95, "n": len(self._all),
            "onset_p50": onset_p50, "onset_p95": onset_p95,
        }


def _percentiles(values: deque[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    p50, p95 = np.percentile(np.fromiter(values, np.float64, len(values)), [50, 95])
    return round(float(p50), 3), round(float(p95), 3)
