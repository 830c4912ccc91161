"""Audio sources: files, live devices, paced playback, the simulated array.

Every live source writes blocks into the same :class:`~pamlive.buffers.RingBuffer` the
same way (``ring.write(block)``) and counts what it delivered in :class:`CaptureCounters`;
the monitor does not care which kind it is reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pamlive.buffers import RingBuffer


@dataclass
class CaptureCounters:
    """Written only by the producer (plain int stores: safe to read from other threads)."""

    callbacks: int = 0
    frames: int = 0
    overflows: int = 0  # blocks the device flagged as input overflow (audio lost upstream)
    status_flags: int = 0  # blocks with any PortAudio status flag
    errors: int = 0  # exceptions caught inside the callback (never raised into PortAudio)
    overflow_sample: int = 0  # first sample after the newest overflow (set before `overflows`,
    # once that block is in the ring)

    def as_dict(self) -> dict[str, int]:
        return {"callbacks": self.callbacks, "frames": self.frames, "overflows": self.overflows,
                "status_flags": self.status_flags}


class LiveSource(Protocol):
    """What the monitor needs from a source."""

    name: str
    sample_rate: int
    channels: int
    counters: CaptureCounters
    # True for a sound card: samples come on its ADC clock (UTC is disciplined against the
    # host clock), and the stream never ends by itself (a stop is a fault: reopen it).
    # False for paced playback and the simulator: the file's time is the truth.
    live: bool

    def start(self, ring: RingBuffer) -> None:
        """Begin writing into ``ring``; returns at once."""

    def stop(self) -> None:
        """Stop writing; idempotent."""

    @property
    def start_utc(self) -> datetime | None:
        """UTC of sample 0, known once the first block has arrived."""

    @property
    def finished(self) -> bool:
        """True once a finite source (playback) has delivered everything or failed."""

    @property
    def error(self) -> Exception | None:
        """The problem that ended the source early, if any."""
