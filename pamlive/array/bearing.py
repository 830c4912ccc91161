"""One detection's bearing: pair delays by GCC-PHAT, then the least-squares direction.

Pure computation over a block of samples; :mod:`pamlive.array.worker` runs it off the
publisher thread, ``pamlive analyze`` runs it inline.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pamlive.array.gcc_phat import PairDelay, pair_delays
from pamlive.array.geometry import ArrayGeometry, Bearing
from pamlive.config import ArraySettings
from pamlive.detection import Detection
from pamlive.errors import ConfigError

HeadingAt = Callable[[float], float | None]  # UTC epoch seconds -> true heading, degrees


@dataclass(frozen=True)
class BearingResult:
    """What the array says about one detection (``relative`` None: no direction found)."""

    relative: Bearing | None
    heading_deg: float | None
    delays: list[PairDelay]
    tdoa_consistent: bool
    cost_ms: float

    @property
    def true(self) -> Bearing | None:
        if self.relative is None or self.heading_deg is None:
            return None
        return self.relative.turned(self.heading_deg)

    def fields(self) -> dict[str, Any]:
        """The optional bearing fields of a detection body (``docs/array.md``)."""
        out: dict[str, Any] = {"tdoa_consistent": self.tdoa_consistent}
        b = self.true or self.relative
        if b is not None and self.relative is not None:
            out["bearing_deg"] = round(b.bearing_deg, 2)
            out["bearing_reference"] = "true" if self.true else "array"
            out["relative_bearing_deg"] = round(self.relative.bearing_deg, 2)
            out["bearing_uncertainty_deg"] = round(b.uncertainty_deg, 2)
            if b.ambiguous:
                out["ambiguous"] = True
                out["bearing_candidates_deg"] = [round(c, 2) for c in b.candidates_deg]
                out["cone_deg"] = round(b.cone_deg or 0.0, 2)
            if b.elevation_deg is not None:
                out["elevation_deg"] = round(b.elevation_deg, 2)
            out["tdoa_residual_ms"] = round(b.residual_s * 1000.0, 4)
        out["pairs"] = [{"channels": [d.i, d.j], "tdoa_ms": round(d.tdoa_s * 1000.0, 4),
                         "confidence": round(d.confidence, 3)} for d in self.delays]
        return out


class BearingEstimator:
    """Bearings for one array (``[array]`` settings) with an optional heading lookup."""

    def __init__(self, settings: ArraySettings, heading_at: HeadingAt | None = None) -> None:
        self.settings = settings
        self.geometry = ArrayGeometry(_positions(settings), settings.sound_speed)
        self._limits = self.geometry.max_delays_s()
        fixed = settings.heading_deg if settings.heading_source == "fixed" else None
        self._heading_at = heading_at if heading_at is not None else (lambda _t: fixed)

    def check_channels(self, channels: int) -> None:
        """The input must have a channel for every element (extra channels are ignored)."""
        if channels < self.geometry.channels:
            raise ConfigError(f"[array] positions lists {self.geometry.channels} elements but "
                              f"the input has {channels} channel(s)")

    def estimate(self, samples: np.ndarray, fs: float, band: tuple[float, float] | None,
                 utc_s: float | None = None) -> BearingResult:
        """Bearing from ``samples`` (frames, channels) of one detection."""
        t0 = time.perf_counter()
        samples = _loudest_span(samples[:, : self.geometry.channels], fs, band,
                                round(self.settings.focus_s * fs))
        delays = pair_delays(samples, fs, self._limits, band)
        bearing = self.geometry.solve(delays, fs, self.settings.min_confidence)
        consistent = (bearing is not None and bearing.pairs_used == len(delays)
                      and bearing.residual_s * 1000.0 <= self.settings.max_residual_ms)
        heading = self._heading_at(utc_s) if utc_s is not None else None
        if heading is not None and not math.isfinite(heading):
            heading = None
        return BearingResult(bearing, heading, delays, consistent,
                             (time.perf_counter() - t0) * 1000.0)

    def for_detection(self, det: Detection, samples: np.ndarray,
                      utc_s: float | None = None) -> BearingResult:
        """:meth:`estimate` in the detection's frequency box (the model's band)."""
        band = ((det.low_freq or 0.0, det.high_freq or det.sample_rate / 2)
                if det.low_freq is not None or det.high_freq is not None else None)
        return self.estimate(samples, det.sample_rate, band, utc_s)


def _loudest_span(samples: np.ndarray, fs: float, band: tuple[float, float] | None,
                  frames: int) -> np.ndarray:
    """The ``frames`` where the in-band energy rises on every channel: the call itself,
    not the noise the merged windows pad it with, nor a knock on one hydrophone (each
    channel's energy is taken relative to its own median, then the least of them counts;
    ``frames`` 0: everything)."""
    if frames <= 0 or samples.shape[0] <= frames:
        return samples
    from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
    x = samples.astype(np.float64)
    if band is not None and 0 < band[0] < band[1] < fs / 2:
        x = signal.sosfilt(signal.butter(4, band, "bandpass", fs=fs, output="sos"), x, axis=0)
    energy = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x * x, axis=0)])
    windowed = energy[frames:] - energy[:-frames]
    relative = windowed / np.maximum(np.median(windowed, axis=0), 1e-30)
    start = int(np.argmax(relative.min(axis=1)))
    return samples[start: start + frames]


def _positions(settings: ArraySettings) -> list[list[float]]:
    width = max(len(p) for p in settings.positions)
    return [list(p) + [0.0] * (width - len(p)) for p in settings.positions]
