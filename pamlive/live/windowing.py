"""Windowing stage: its thread reads the ring, shows each block to the observers, and
cuts model windows into the bounded window queue (full: the window is dropped, counted).

Windows are cut by the same :class:`~pamlive.windows.Windower` as ``pamlive analyze``,
wrapped so that a ring overrun (a gap in the sample indices) does not corrupt the clock.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from pamlive.buffers import RingBuffer
from pamlive.live.observers import BlockObserver
from pamlive.windows import Window, Windower

log = logging.getLogger(__name__)

WAIT_S = 0.1  # the thread sleeps until the write that completes the next window wakes it,
# at most this long (the observers' blocks) and until half the ring is full
END = object()  # end-of-stream marker passed down the queues
WARM_UP_MAX_S = 60  # seconds of silence a warm-up may push to see its first window


def warm_up(make: Callable[[], Windower], rate: int, channels: int,
            score: Callable[[np.ndarray], object] | None = None) -> None:
    """Cut (and ``score``) one window of silence with a throwaway windower before the
    stream starts, so the Numba kernels compile (or load from their cache) and the model
    session sets up here: on the first live block, seconds of compiling on a fresh install
    stalled the windowing thread, and a fast source overran the ring (samples lost)."""
    windower = make()
    second = np.zeros((rate, channels), np.float32)
    for _ in range(WARM_UP_MAX_S):
        windows = windower.push(second)
        if windows:
            if score is not None:
                score(windows[0].features)
            return


class GapTolerantWindows:
    """A :class:`Windower` that survives ring overruns without corrupting the sample clock.

    After a gap the windower restarts at the first sample after it; its windows are shifted
    to stream indices, and the window numbering skips so no detection merges across a gap.
    """

    def __init__(self, make: Callable[[], Windower]) -> None:
        self._make = make
        self._windower = make()
        self._sample_offset = 0
        self._index_offset = 0
        self._expected = 0
        self._last_index = -1

    def push(self, start_sample: int, block: np.ndarray) -> list[Window]:
        if start_sample != self._expected:
            self._windower = self._make()
            self._sample_offset = start_sample
            self._index_offset = self._last_index + 2
        self._expected = start_sample + block.shape[0]
        return self._shift(self._windower.push(block))

    def flush(self) -> list[Window]:
        return self._shift(self._windower.flush())

    def frames_needed(self) -> int:
        """Stream samples after which the next window can be cut."""
        return self._sample_offset + self._windower.frames_needed()

    def _shift(self, windows: list[Window]) -> list[Window]:
        so, io = self._sample_offset, self._index_offset
        out = [Window(w.index + io, w.start_sample + so, w.end_sample + so, w.ready_sample + so,
                      w.features) for w in windows]
        if out:
            self._last_index = out[-1].index
        return out


class WindowCutter(Protocol):
    """What the windowing thread cuts with: ring blocks in (stream indices), queue items
    out (a :class:`GapTolerantWindows`, or one per ensemble member: ``pamlive/kinds/``)."""

    def push(self, start_sample: int, block: np.ndarray) -> Sequence[object]: ...

    def flush(self) -> Sequence[object]: ...

    def frames_needed(self) -> int: ...


class Windowing:
    """The ``pamlive-windows`` thread. Counters are written by this thread only."""

    def __init__(self, ring: RingBuffer, windows: WindowCutter, observers:
                 Sequence[BlockObserver], queue_size: int, chunk: int) -> None:
        self.ring = ring
        self.windows = windows
        self.observers = list(observers)
        self.queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.chunk = chunk  # at most this many frames per pass: bounded temporaries
        self.cut = 0  # windows cut
        self.drops = 0  # windows dropped because the inference queue was full
        self.processed = 0  # samples taken from the ring (systemd's WATCHDOG=1 progress)
        self.failure: Exception | None = None
        self._thread: threading.Thread | None = None

    def start(self, input_done: threading.Event, downstream_failed: Callable[[], bool]) -> None:
        self._thread = threading.Thread(target=self._run, args=(input_done, downstream_failed),
                                        name="pamlive-windows", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _run(self, input_done: threading.Event, downstream_failed: Callable[[], bool]) -> None:
        try:
            while True:
                res = self.ring.read(max_frames=self.chunk)
                if res.data.shape[0]:
                    for observer in self.observers:
                        observer.observe(res.start_sample, res.data)
                    self.processed += res.data.shape[0]
                    self._offer(self.windows.push(res.start_sample, res.data))
                elif input_done.is_set() and self.ring.read_position >= self.ring.written:
                    break
                else:  # at least one new sample (no busy loop), at most half the ring
                    ring, needed = self.ring, self.windows.frames_needed()
                    ring.wait(max(min(needed, ring.read_position + ring.capacity // 2),
                                  ring.written + 1), WAIT_S)
            self._offer(self.windows.flush())
        except Exception as exc:
            log.exception("windowing thread failed; the monitor is deaf and stops")
            self.failure = RuntimeError(f"the windowing stage stopped: {exc}")
        finally:
            while True:  # the end marker must not be dropped, unless no one is left to read it
                try:
                    self.queue.put(END, timeout=0.5)
                    break
                except queue.Full:
                    if downstream_failed():
                        break

    def _offer(self, windows: Sequence[object]) -> None:
        for w in windows:
            self.cut += 1
            try:
                self.queue.put_nowait(w)
            except queue.Full:
                self.drops += 1
