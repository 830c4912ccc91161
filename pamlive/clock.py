"""The sample clock: input-stream sample index -> UTC.

Every time in pamlive is a sample index of the input stream; this is the one place that
turns an index into UTC (detections, archive file names, clip names, GPS matching).

* **Anchor.** The first block fixes the UTC of a sample: the start time in a recording's
  name, or the host clock when a sound card delivers its first block.
* **Overflow.** A sound card that loses samples upstream (PortAudio input overflow) makes
  every later index run behind true time. :meth:`SampleClock.anchor` re-anchors at the
  first sample after the loss, from the host clock, at once (a step).
* **Drift.** A card's crystal runs fast or slow against the host's NTP-disciplined clock
  (100 ppm is 0.36 s an hour). :meth:`SampleClock.observe` compares the clock's UTC of a
  sample with the host's arrival time of that sample and *slews*: from that sample on, the
  seconds per sample are the fitted ratio of host seconds to samples plus a correction that
  removes the remaining offset over ``horizon_s``, never more than ``max_slew_ppm`` away
  from nominal. UTC stays continuous and increasing while slewing.

Stated bound: while the card's drift is within ``max_slew_ppm``, UTC follows the host
clock within the smallest arrival delay of ``window`` observations plus about
``drift x horizon_s`` (a few ms for 100 ppm and 30 s); an offset larger than ``step_s``
that all of the last ``window`` observations agree on is corrected by a step. Sources
paced from files (playback, simulator) are not disciplined: the file's time is the truth
there, whatever the speed.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from datetime import UTC, datetime, timedelta

import numpy as np


def utc_at_sample(stream_start_utc: datetime, sample: int, sample_rate: int) -> datetime:
    """UTC of ``sample`` on a nominal clock: the stream's start plus the samples since."""
    return stream_start_utc + timedelta(seconds=sample / sample_rate)


class SampleClock:
    """Piecewise-linear map from sample index to UTC (epoch seconds), safe across threads.

    Each segment starts at a sample with a UTC and a seconds-per-sample rate; at most
    ``history`` segments are kept (older samples extrapolate from the oldest one).
    """

    def __init__(self, sample_rate: int, *, max_slew_ppm: float = 500.0, step_s: float = 0.5,
                 horizon_s: float = 30.0, window: int = 8, fit_points: int = 300,
                 history: int = 4096) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.max_slew = max_slew_ppm * 1e-6
        self.step_s = step_s
        self.horizon_s = horizon_s
        self._nominal = 1.0 / self.sample_rate
        self._history = history
        self._starts: list[int] = []  # first sample of each segment, increasing
        self._segments: list[tuple[float, float]] = []  # (utc of that sample, s per sample)
        self._points: deque[tuple[int, float]] = deque(maxlen=fit_points)
        self._errors: deque[float] = deque(maxlen=window)  # host minus clock, newest last
        self._lock = threading.Lock()
        self.anchors = 0  # anchors set, the first one included (each later one is a step)
        self.last_error_s: float | None = None  # estimated host minus clock, last observation
        self.slew_ppm = 0.0  # rate of the newest segment against nominal
        self.drift_ppm = 0.0  # the card's rate against the host's, as fitted

    @property
    def anchored(self) -> bool:
        return bool(self._starts)

    def anchor(self, sample: int, utc_s: float) -> None:
        """``sample`` was taken at ``utc_s``: start a nominal-rate segment there (a step)."""
        with self._lock:
            self._add(sample, utc_s, self._nominal * (1.0 + self.slew_ppm * 1e-6))
            self._points.clear()
            self._points.append((sample, utc_s))
            self._errors.clear()
            self.anchors += 1

    def observe(self, sample: int, host_utc_s: float) -> None:
        """The host saw ``sample`` arrive at ``host_utc_s``: slew (or step) towards it.

        Arrival times are late by the block latency plus scheduling delays, never early, so
        the clock's offset is estimated from the least-delayed of the last ``window``
        observations; a step needs all of them to agree that the clock is off by more
        than ``step_s`` (a stalled thread is not a clock error).
        """
        if not self.anchored:
            self.anchor(sample, host_utc_s)
            return
        with self._lock:
            if sample < self._starts[-1]:
                return  # older than the newest segment: nothing to learn
            predicted = self._utc_s(sample)
            self._errors.append(host_utc_s - predicted)
            offset = min(self._errors)  # the clock is behind the host by at most this
            self.last_error_s = offset
            full = len(self._errors) == self._errors.maxlen
            step = full and (offset > self.step_s or max(self._errors) < -self.step_s)
            if not step:
                self._points.append((sample, host_utc_s))
                drift = self._fitted_drift()
                self.drift_ppm = drift * 1e6
                rate = drift + offset / self.horizon_s
                rate = min(self.max_slew, max(-self.max_slew, rate))
                self.slew_ppm = rate * 1e6
                self._add(sample, predicted, self._nominal * (1.0 + rate))
        if step:
            self.anchor(sample, predicted + offset)

    def utc_s(self, sample: int) -> float:
        """UTC of ``sample`` in seconds since the epoch (the clock must be anchored)."""
        with self._lock:
            return self._utc_s(sample)

    def utc(self, sample: int) -> datetime:
        """UTC of ``sample`` (the clock must be anchored)."""
        return datetime.fromtimestamp(self.utc_s(sample), UTC)

    def stats(self) -> dict[str, float | int | None]:
        """For the health message: anchors so far (each after the first is a step), the
        fitted drift, the current slew, and the last estimated offset from the host."""
        err = self.last_error_s
        return {"anchors": self.anchors, "drift_ppm": round(self.drift_ppm, 2),
                "slew_ppm": round(self.slew_ppm, 2),
                "offset_ms": None if err is None else round(err * 1000.0, 3)}

    # -- internals (lock held) ---------------------------------------------------------------

    def _utc_s(self, sample: int) -> float:
        if not self._starts:
            raise RuntimeError("the sample clock has no anchor yet")
        i = max(0, bisect.bisect_right(self._starts, sample) - 1)
        utc, per_sample = self._segments[i]
        return utc + (sample - self._starts[i]) * per_sample

    def _add(self, sample: int, utc_s: float, per_sample: float) -> None:
        i = bisect.bisect_left(self._starts, sample)
        del self._starts[i:], self._segments[i:]  # a re-anchor replaces what followed
        self._starts.append(sample)
        self._segments.append((utc_s, per_sample))
        if len(self._starts) > 2 * self._history:
            del self._starts[: self._history], self._segments[: self._history]

    def _fitted_drift(self) -> float:
        """Host seconds per sample over the recent points, relative to nominal, minus one."""
        if len(self._points) < 3:
            return self.slew_ppm * 1e-6
        pts = np.array(self._points, dtype=np.float64)
        s = pts[:, 0] - pts[0, 0]
        if s[-1] <= 0:
            return self.slew_ppm * 1e-6
        slope = np.polyfit(s, pts[:, 1] - pts[0, 1], 1)[0]
        return float(slope * self.sample_rate - 1.0)
