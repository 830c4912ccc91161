"""Playback: recordings (or any block generator) fed into the live path at a chosen pace.

Playback exercises exactly the code a sound card does: a producer thread writes blocks
into the ring, paced so that block ``k`` is written when the stream clock says it would
have arrived (``speed`` > 1 plays faster than real time). The simulated array is driven
the same way. (The config keeps its word: ``[source] kind = "replay"`` selects it; in the
code "replay" means only the alert bus's backfill server.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pamlive.buffers import RingBuffer
from pamlive.errors import AudioInputError, PamliveError
from pamlive.sources import CaptureCounters
from pamlive.sources.files import expand_inputs, iter_blocks, open_audio, start_time_from_name

DEFAULT_BLOCKSIZE = 1024
# frames read from a file at once and handed on in blocks: one small read per block
# costs several times more CPU, woken from idle ~100 times a second
READ_FRAMES = 1 << 16
SHORT_SLEEP_S = 0.05  # a stop waits at most this long for a sleeping block


class PacedSource:
    """A thread writing ``blocks()`` into the ring at ``speed`` times real time.

    ``max_frames`` ends the stream after that many frames (benchmarks, bounded demos).
    """

    live = False

    def __init__(
        self,
        name: str,
        sample_rate: int,
        channels: int,
        blocks: Callable[[], Iterator[np.ndarray]],
        *,
        speed: float = 1.0,
        start_utc: datetime | None = None,
        max_frames: int | None = None,
    ) -> None:
        if speed <= 0:
            raise PamliveError(f"playback speed must be positive, got {speed}")
        self.name = name
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.speed = float(speed)
        self.counters = CaptureCounters()
        self._blocks = blocks
        self._fixed_start = start_utc
        self._start_utc: datetime | None = None
        self._max_frames = max_frames
        self._stop = threading.Event()
        self._done = threading.Event()
        self._error: Exception | None = None
        self._thread: threading.Thread | None = None

    def start(self, ring: RingBuffer) -> None:
        self._thread = threading.Thread(target=self._run, args=(ring,), name="pamlive-playback",
                                        daemon=True)
        self._thread.start()

    def _run(self, ring: RingBuffer) -> None:
        t0 = time.monotonic()
        written = 0
        try:
            for block in self._blocks():
                if self._max_frames is not None:
                    block = block[: self._max_frames - written]
                if block.shape[0] == 0:
                    break
                if self._sleep_until(t0 + (written + block.shape[0])
                                     / (self.sample_rate * self.speed)):
                    break
                if self._start_utc is None:
                    self._start_utc = self._fixed_start or datetime.now(UTC)
                ring.write(block)
                written += block.shape[0]
                self.counters.callbacks += 1
                self.counters.frames += block.shape[0]
        except Exception as exc:  # reported by the live engine after it flushed
            self._error = exc
        finally:
            self._done.set()

    def _sleep_until(self, due: float) -> bool:
        """Sleep until ``due`` (monotonic); True once stopped. A short sleep is a plain
        sleep: ``Event.wait`` costs twice its CPU, and it comes ~100 times a second."""
        delay = due - time.monotonic()
        if delay > SHORT_SLEEP_S:
            return self._stop.wait(delay)
        if delay > 0:
            time.sleep(delay)
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def start_utc(self) -> datetime | None:
        return self._start_utc

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> Exception | None:
        return self._error


def playback_source(
    paths: Sequence[str | Path],
    *,
    speed: float = 1.0,
    loop: bool = False,
    blocksize: int = 0,
    max_frames: int | None = None,
) -> PacedSource:
    """Files or folders (WAV/FLAC/AIFF, time order) as one continuous paced stream.

    All files must share one rate and channel count. Sample 0 is the first file's start
    time when its name holds one (``PAM_20010327_091800.wav``), else the moment playback
    starts; later files follow on without gaps (the sample clock counts samples).
    """
    files = expand_inputs(paths)
    if not files:
        raise AudioInputError(f"no WAV/FLAC/AIFF files in {', '.join(map(str, paths))}")
    infos = [open_audio(f) for f in files]
    first = infos[0]
    for info in infos[1:]:
        if (info.sample_rate, info.channels) != (first.sample_rate, first.channels):
            raise AudioInputError(
                f"{info.path}: {info.sample_rate} Hz x {info.channels} ch differs from "
                f"{first.path.name} ({first.sample_rate} Hz x {first.channels} ch); playback "
                "needs one rate and channel count"
            )
    size = blocksize or DEFAULT_BLOCKSIZE
    read = size * max(1, READ_FRAMES // size)

    def blocks() -> Iterator[np.ndarray]:
        while True:
            for info in infos:
                for chunk in iter_blocks(info.path, read):
                    for i in range(0, chunk.shape[0], size):
                        yield chunk[i : i + size]
            if not loop:
                return

    return PacedSource(
        f"playback of {len(files)} file(s) from {first.path.name}", first.sample_rate,
        first.channels, blocks, speed=speed, start_utc=start_time_from_name(first.path),
        max_frames=max_frames,
    )


def simulator_source(array, *, blocksize: int = 0, speed: float = 1.0,
                     max_frames: int | None = None) -> PacedSource:
    """The simulated hydrophone array (``SimulatedArray``) paced like a sound card."""
    size = blocksize or DEFAULT_BLOCKSIZE

    def blocks() -> Iterator[np.ndarray]:
        while True:
            yield array.read(size)

    return PacedSource("simulated array", array.sample_rate, array.channels, blocks,
                       speed=speed, max_frames=max_frames)
