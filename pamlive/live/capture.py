"""Capture stage: the source writes blocks into the ring; the sample clock is kept true.

The source owns its thread (the PortAudio callback, or the playback thread) and its
counters; the ring counts every sample the reader lost. This stage adds the sample
clock: anchored when the first block arrives, and for a sound card re-anchored after an
input overflow and slewed against the host clock once a second (see ``pamlive.clock``).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from pamlive.buffers import RingBuffer
from pamlive.clock import SampleClock
from pamlive.sources import LiveSource

OBSERVE_EVERY_S = 1.0  # of stream time between two looks at the host clock


class Capture:
    """Source + ring + sample clock."""

    def __init__(self, source: LiveSource, ring_seconds: float) -> None:
        self.source = source
        rate = source.sample_rate
        self.ring = RingBuffer(source.channels, max(1, round(ring_seconds * rate)))
        self.clock = SampleClock(rate)
        self._anchor_lock = threading.Lock()
        self._overflows_seen = 0
        self._observed = 0  # sample index of the last look at the host clock

    def start(self) -> None:
        self.source.start(self.ring)

    def stop(self) -> None:
        self.source.stop()

    @property
    def ended(self) -> bool:
        """A finite source delivered everything (a live device never ends by itself)."""
        return self.source.finished and not self.source.live

    def anchored(self) -> bool:
        """True once the clock knows the UTC of a sample (the first block has arrived);
        any thread may ask, the first one to see the source's start time anchors."""
        if self.clock.anchored:
            return True
        start = self.source.start_utc
        if start is None:
            return False
        with self._anchor_lock:
            if not self.clock.anchored:
                self.clock.anchor(0, start.timestamp())
        return True

    def utc(self, sample: int) -> datetime:
        """UTC of ``sample`` on the disciplined clock (the first block must have arrived)."""
        if not self.anchored():
            raise RuntimeError("no audio yet: the sample clock has no anchor")
        return self.clock.utc(sample)

    def sync_clock(self) -> None:
        """Called often from the engine's loop: a sound card's overflow re-anchors the
        clock at the first sample after the loss; once a second of stream, the newest
        sample's host arrival time slews it against drift."""
        if not self.source.live or not self.anchored():
            return
        cap = self.source.counters
        if cap.overflows != self._overflows_seen:
            self._overflows_seen = cap.overflows
            host = self._host_utc(cap.overflow_sample)
            if host is not None:
                self.clock.anchor(cap.overflow_sample, host)
        written = self.ring.written
        if written - self._observed >= OBSERVE_EVERY_S * self.source.sample_rate:
            host = self._host_utc(written)
            if host is not None:
                self.clock.observe(written, host)
                self._observed = written

    def _host_utc(self, sample: int) -> float | None:
        """Host UTC when ``sample`` was taken, from the ring's arrival table: the block's
        arrival (``time.monotonic``) moved back by the samples after it in that block."""
        found = self.ring.arrival_of(max(0, sample - 1) if sample == self.ring.written
                                     else sample)
        if found is None:
            return None
        end, arrived = found
        wall_minus_mono = time.time() - time.monotonic()
        return arrived + wall_minus_mono - (end - sample) / self.source.sample_rate
