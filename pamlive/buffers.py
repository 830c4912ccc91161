"""The capture ring: where the audio callback hands samples to the processing threads.

One preallocated array in the sources' own layout (frames, channels), so a write and a
read are each one plain copy; written by one producer (the audio callback, or the
replay/simulator thread) and read by one consumer. Positions are absolute sample
counters of the input stream, so the reader always knows which sample index it holds
(the sample clock) and exactly how many samples it never saw. The producer never waits
for the reader: when the reader falls behind by more than the capacity, the oldest audio
is overwritten, and the reader counts every sample it lost and skips forward.

Each write also records ``(end_sample, time.monotonic())`` in a preallocated arrival
table, so alert latency can be measured from the moment a window's last sample arrived.

The reader may sleep until a given sample has been written (:meth:`RingBuffer.wait`):
the write that brings it puts one byte into a non-blocking pipe (no lock, no
allocation), so the reader wakes when its next window is complete rather than polling
a hundred times a second (each wake-up from idle costs CPU of its own).
"""

from __future__ import annotations

import contextlib
import os
import select
import time
import weakref
from dataclasses import dataclass

import numpy as np

_NEVER = 1 << 62  # no reader waits


def _close(fds: tuple[int, int]) -> None:
    for fd in fds:
        os.close(fd)


@dataclass(frozen=True)
class ReadResult:
    """Samples ``[start_sample, start_sample + data.shape[0])`` plus the samples lost before."""

    start_sample: int
    data: np.ndarray  # (frames, channels) float32, a copy owned by the reader
    lost: int  # samples overwritten before the reader could read them (a gap before start)


class RingBuffer:
    """Single-producer, single-consumer multichannel ring of float32 samples.

    ``write`` (producer) never blocks, raises or allocates array memory; ``read``
    (consumer) returns a copy of everything new. Both run under the GIL, and the
    producer publishes its counter only after the samples are in place; the reader
    re-checks the counter after copying, so a block overwritten *during* the copy is
    counted as lost instead of being returned torn.
    """

    def __init__(self, channels: int, capacity: int, arrival_slots: int = 8192) -> None:
        if channels < 1 or capacity < 1:
            raise ValueError(f"ring needs >= 1 channel and >= 1 sample, got {channels}, {capacity}")
        self.channels = int(channels)
        self.capacity = int(capacity)
        self._frames = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._written = 0  # samples ever written (producer's counter)
        self._read = 0  # samples consumed or skipped (consumer's counter)
        self._lost = 0  # samples overwritten unread (consumer's count)
        self._arrival_end = np.zeros(arrival_slots, dtype=np.int64)
        self._arrival_time = np.zeros(arrival_slots, dtype=np.float64)
        self._arrivals = 0  # entries ever recorded
        self._wake_at = _NEVER  # the sample a waiting reader needs (see wait)
        self._wake: tuple[int, int] | None = None  # the pipe (read, write), made by wait

    # -- producer side -------------------------------------------------------------------

    def write(self, block: np.ndarray, arrival: float | None = None) -> None:
        """Copy ``block`` (frames, channels) in; the oldest samples go if the ring is full.

        A block longer than the ring keeps only its newest ``capacity`` samples (the
        earlier ones count as lost when the reader notices the jump).
        """
        frames = block.shape[0]
        if frames == 0:
            return
        start = self._written
        src = block
        if frames > self.capacity:
            src = block[frames - self.capacity :]
            start += frames - self.capacity
        n = src.shape[0]
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        np.copyto(self._frames[pos : pos + first], src[:first], casting="same_kind")
        if first < n:
            np.copyto(self._frames[: n - first], src[first:], casting="same_kind")
        self._written += frames
        slot = self._arrivals % self._arrival_end.shape[0]
        self._arrival_end[slot] = self._written
        self._arrival_time[slot] = time.monotonic() if arrival is None else arrival
        self._arrivals += 1
        if self._written >= self._wake_at:
            self._wake_at = _NEVER
            self._signal()

    def _signal(self) -> None:
        """Wake the waiting reader: one byte, never blocking (a full pipe already wakes it)."""
        if self._wake is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"\0")

    # -- consumer side -------------------------------------------------------------------

    @property
    def written(self) -> int:
        """Samples written since the start (the producer's sample clock)."""
        return self._written

    @property
    def read_position(self) -> int:
        """The next sample index the reader will return."""
        return self._read

    @property
    def lost_samples(self) -> int:
        """Samples overwritten before the reader saw them (per channel)."""
        return self._lost

    def fill(self) -> float:
        """Unread fraction of the ring (0..1; 1 means the next write overwrites)."""
        return min(1.0, (self._written - self._read) / self.capacity)

    def read(self, max_frames: int | None = None) -> ReadResult:
        """Return every unread sample (up to ``max_frames``), skipping and counting lost ones."""
        written = self._written
        lost = 0
        oldest = written - self.capacity
        if self._read < oldest:
            lost = oldest - self._read
            self._read = oldest
        start = self._read
        n = written - start
        if max_frames is not None:
            n = min(n, max_frames)
        torn, out = self._copy(start, n)
        if torn:
            lost += torn
            start += torn
            n -= torn
        self._read = start + n
        self._lost += lost
        return ReadResult(start, out, lost)

    def wait(self, until: int, timeout: float) -> None:
        """Sleep until ``until`` samples have been written in all (``written >= until``)
        or ``timeout`` seconds have passed; the reader's side."""
        if self._wake is None:
            self._wake = os.pipe()
            for fd in self._wake:
                os.set_blocking(fd, False)
            weakref.finalize(self, _close, self._wake)
        try:
            while os.read(self._wake[0], 64):  # wake-ups meant for an earlier wait
                pass
        except BlockingIOError:
            pass
        self._wake_at = until
        if self._written < until:  # the producer sees _wake_at from now on
            select.select([self._wake[0]], [], [], timeout)
        self._wake_at = _NEVER

    def peek(self, start: int, end: int) -> ReadResult | None:
        """A copy of ``[start, end)`` as far as the ring still holds it; the reader's
        position is untouched (for evidence clips). ``lost`` = samples missing before."""
        written = self._written
        lo, hi = max(start, written - self.capacity), min(end, written)
        if hi <= lo:
            return None
        torn, out = self._copy(lo, hi - lo)
        if torn == hi - lo:
            return None
        lo += torn
        return ReadResult(lo, out, lo - start)

    def _copy(self, start: int, n: int) -> tuple[int, np.ndarray]:
        """Copy ``n`` frames from sample ``start``, then drop the leading ones the producer
        overwrote while we copied. Returns (frames dropped, the intact copy)."""
        out = np.empty((n, self.channels), dtype=np.float32)
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        out[:first] = self._frames[pos : pos + first]
        if first < n:
            out[first:] = self._frames[: n - first]
        torn = min(max(self._written - self.capacity - start, 0), n)
        return torn, out[torn:]

    def arrival_time(self, sample: int) -> float | None:
        """``time.monotonic()`` when sample index ``sample`` arrived (None if unknown/too old)."""
        found = self.arrival_of(sample)
        return None if found is None else found[1]

    def arrival_of(self, sample: int) -> tuple[int, float] | None:
        """(end sample, ``time.monotonic()``) of the write that brought ``sample``, or None
        if unknown or too old. The host time of any sample ``s`` of that write is about
        ``time - (end - s) / rate`` (the sample clock uses it against drift)."""
        count = self._arrivals
        slots = self._arrival_end.shape[0]
        oldest_entry = max(0, count - slots)
        lo, hi = oldest_entry, count  # find the first entry with end > sample
        while lo < hi:
            mid = (lo + hi) // 2
            if self._arrival_end[mid % slots] > sample:
                hi = mid
            else:
                lo = mid + 1
        if lo == count:
            return None
        if lo == oldest_entry and oldest_entry > 0:
            # The entry before it was overwritten: we cannot tell when this block began.
            return None
        return int(self._arrival_end[lo % slots]), float(self._arrival_time[lo % slots])

    def last_arrival(self) -> float | None:
        """``time.monotonic()`` of the newest write (None before the first)."""
        count = self._arrivals
        if count == 0:
            return None
        return float(self._arrival_time[(count - 1) % self._arrival_end.shape[0]])
