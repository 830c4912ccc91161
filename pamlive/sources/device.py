"""Live capture from a sound card (PortAudio via sounddevice) into the ring.

The PortAudio callback runs on the audio thread: it only copies ``indata`` into the
preallocated ring and bumps integer counters. It never blocks, logs, allocates array
memory or lets an exception escape (an escaped exception would stop the stream and leave
the monitor deaf).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import numpy as np
import sounddevice as sd

from pamlive.buffers import RingBuffer
from pamlive.devices import DeviceError, DeviceInfo, resolve_device
from pamlive.errors import first_line
from pamlive.sources import CaptureCounters


class DeviceSource:
    """A PortAudio input stream; settings are checked when it is built, before any work."""

    live = True

    def __init__(
        self,
        device: str | int | None,
        channels: int,
        samplerate: int | None = None,
        blocksize: int = 0,
        latency: str | float = "low",
    ) -> None:
        self.info: DeviceInfo = resolve_device(device)
        self.name = f"[{self.info.index}] {self.info.name}"
        self.sample_rate = int(samplerate or round(self.info.default_samplerate))
        self.channels = int(channels)
        self.blocksize = int(blocksize)
        self.latency = latency
        if self.channels > self.info.max_input_channels:
            raise DeviceError(
                f"input device '{self.info.name}' has {self.info.max_input_channels} input "
                f"channel(s), {self.channels} requested"
            )
        try:
            sd.check_input_settings(
                device=self.info.index, channels=self.channels, dtype="float32",
                samplerate=self.sample_rate,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(
                f"input device '{self.info.name}' refuses {self.channels} channel(s) at "
                f"{self.sample_rate} Hz ({first_line(exc)})"
            ) from None
        self.counters = CaptureCounters()
        self._ring: RingBuffer | None = None
        self._stream: sd.InputStream | None = None
        self._start_wall: float | None = None
        self._aborted = threading.Event()

    def start(self, ring: RingBuffer) -> None:
        self._ring = ring
        try:
            self._stream = sd.InputStream(
                device=self.info.index, channels=self.channels, samplerate=self.sample_rate,
                blocksize=self.blocksize, latency=self.latency, dtype="float32",
                callback=self._callback, finished_callback=self._aborted.set,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise DeviceError(f"cannot open input device '{self.info.name}': "
                              f"{first_line(exc)}") from None

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        try:
            ring = self._ring
            if ring is None:  # a bug (called before start): counted below, never raised
                raise RuntimeError("capture callback before start()")
            if self._start_wall is None:
                # Once: wall time of the first sample = now minus its age on the ADC clock.
                age = time_info.currentTime - time_info.inputBufferAdcTime
                if not 0.0 <= age < 1.0:  # some host APIs (JACK) report no ADC time
                    age = frames / self.sample_rate
                self._start_wall = time.time() - age
            first = ring.written
            ring.write(indata)
            self.counters.callbacks += 1
            self.counters.frames += frames
            if status:
                self.counters.status_flags += 1
                if status.input_overflow:  # audio lost before this block, now in the ring:
                    self.counters.overflow_sample = first  # the clock re-anchors here
                    self.counters.overflows += 1
        except Exception:  # nothing may escape into PortAudio
            self.counters.errors += 1

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except sd.PortAudioError:
                pass  # already gone (device unplugged): nothing left to release

    @property
    def start_utc(self) -> datetime | None:
        return None if self._start_wall is None else datetime.fromtimestamp(self._start_wall, UTC)

    @property
    def finished(self) -> bool:
        """A live device ends only if PortAudio aborted the stream (e.g. unplugged)."""
        return self._aborted.is_set() and self._stream is not None

    @property
    def error(self) -> Exception | None:
        if self.finished:
            return DeviceError(f"input device '{self.info.name}' stopped delivering audio")
        return None
