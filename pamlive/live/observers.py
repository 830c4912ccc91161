"""Block observers: everything besides windowing that must see every input block.

The windowing thread shows each block it reads from the ring to a list of observers,
in order, before cutting windows. Each observer is cheap (a few vector reductions or a
non-blocking queue put) and keeps its own counters; adding one is adding it to the list
in ``engine.py``. Times are sample indices: ``start_sample`` is the first frame's index.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pamlive.clock import SampleClock
from pamlive.field.archive import ArchiveSettings, RawArchive
from pamlive.field.watchdog import LivenessWatchdog
from pamlive.live.spectrum import SPECTRUM_TOPIC, SpectrumFeed


class BlockObserver(Protocol):
    def observe(self, start_sample: int, block: np.ndarray) -> None:
        """``block`` (frames, channels) starts at sample ``start_sample``; do not keep it
        unless you own a copy (the ring hands out fresh copies, so queueing it is fine)."""


class LevelMeter:
    """Running per-channel sum of squares; health reads the change between snapshots."""

    def __init__(self, channels: int) -> None:
        self.sumsq = np.zeros(channels, np.float64)
        self.count = 0

    def observe(self, start_sample: int, block: np.ndarray) -> None:
        self.sumsq += np.einsum("ij,ij->j", block, block, dtype=np.float64)
        self.count += block.shape[0]

    def snapshot(self) -> tuple[tuple[float, ...], int]:
        return tuple(float(v) for v in self.sumsq), self.count


class WatchdogFeed:
    """Per-channel liveness in samples: the watchdog's dead-channel timers run on the
    stream's own time, so they are right at any playback speed and while a backlog drains."""

    def __init__(self, watchdog: LivenessWatchdog, sample_rate: int) -> None:
        self.watchdog = watchdog
        self.sample_rate = sample_rate

    def observe(self, start_sample: int, block: np.ndarray) -> None:
        end_s = (start_sample + block.shape[0]) / self.sample_rate
        self.watchdog.observe_block(block, end_s)


class SpectrumPublisher:
    """Spectrum rows for the dashboard strip. They are for eyes: playback faster than real
    time shows a sample of them (blocks are skipped while the fed audio is more than a
    second ahead of the wall clock), so accelerated runs do not spend their time on pictures."""

    def __init__(self, feed: SpectrumFeed, publish: Callable[[str, dict[str, Any]], None]) -> None:
        self.feed = feed
        self.publish = publish
        self._fed = 0
        self._started: float | None = None  # wall time of the first block

    def observe(self, start_sample: int, block: np.ndarray) -> None:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if self._fed / self.feed.sample_rate > now - self._started + 1:
            return
        self._fed += block.shape[0]
        for body in self.feed.push(block):
            self.publish(SPECTRUM_TOPIC, body)


class ArchiveFeed:
    """Hands blocks to the raw archive (its own writer thread), made once the sample clock
    is anchored so that file names carry the clock's UTC."""

    def __init__(self, directory: Path, clips_directory: Path | None, sample_rate: int,
                 channels: int, clock: SampleClock, anchored: Callable[[], bool],
                 settings: ArchiveSettings) -> None:
        self._make = lambda: RawArchive(directory, clips_directory, sample_rate, channels,
                                        clock.utc, settings)
        self._anchored = anchored
        self.archive: RawArchive | None = None

    def observe(self, start_sample: int, block: np.ndarray) -> None:
        if self.archive is None:
            if not self._anchored():
                return
            self.archive = self._make()
        self.archive.submit(block, start_sample)

    def drain_events(self) -> list[tuple[str, str]]:
        """The archive's health alerts (disk full, resumed) since the last call."""
        return self.archive.drain_events() if self.archive is not None else []

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()
