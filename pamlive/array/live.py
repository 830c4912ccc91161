"""Build the live array stage from ``[array]``: what the monitor needs in one call."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Protocol

import numpy as np

from pamlive.array.bearing import BearingResult, HeadingAt
from pamlive.array.heading import HeadingTrack
from pamlive.array.worker import ArrayStage, bearing_body
from pamlive.buffers import RingBuffer
from pamlive.config import ArraySettings
from pamlive.detection import Detection
from pamlive.errors import ConfigError


class _Bus(Protocol):
    run_id: str

    def publish_bearing(self, body: dict) -> None: ...


class _Source(Protocol):
    channels: int


def open_array_stage(settings: ArraySettings | None, ring: RingBuffer, bus: _Bus,
                     source: _Source, station: str, nmea_source: object | None
                     ) -> ArrayStage | None:
    """The stage for ``[array]`` (None without the section); checks the channel count and
    the heading source now, before capture starts."""
    if settings is None:
        return None
    heading_at: HeadingAt | None = None
    if settings.heading_source == "nmea":
        listeners = getattr(nmea_source, "listeners", None)
        if listeners is None:
            raise ConfigError("[array] heading_source = 'nmea' needs an NMEA [position] "
                              "source (udp or serial)")
        track = HeadingTrack(time.time)
        listeners.append(track.feed)
        heading_at = track.at

    def fetch(start: int, end: int) -> np.ndarray | None:
        got = ring.peek(start, end)
        return None if got is None else got.data

    def publish(det: Detection, result: BearingResult, utc: datetime | None) -> None:
        bus.publish_bearing(bearing_body(det, result, run_id=bus.run_id, station=station,
                                         start_utc=utc))

    stage = ArrayStage(settings, fetch, publish, heading_at)
    stage.estimator.check_channels(source.channels)
    return stage
