"""The engine: builds the stages from the config and runs the loop that ties them.

Threads and what joins them::

    source (audio callback / playback thread) --RingBuffer--> windowing thread
        (block observers) --window queue (bounded)--> inference thread
        --score queue (bounded)--> this thread: merge + publish, clips due, health

Live detections are the events ``pamlive analyze`` finds in the same audio: the output
kind (``pamlive/kinds/``) gives both the same window cutter, model and merge (one model's
scores, an ensemble's fused scores, an event model's calls). Every time comes from the
sample clock (``capture.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pamlive.alerts.bus import AlertBus
from pamlive.array.live import open_array_stage
from pamlive.buffers import RingBuffer
from pamlive.config import Config
from pamlive.detection import Detection
from pamlive.field.position import open_position_source
from pamlive.field.reexec import Outage, inherited_outage
from pamlive.field.watchdog import LivenessWatchdog, State
from pamlive.kinds import LiveContext, OutputKind, Uses
from pamlive.kinds.base import LivePublisher
from pamlive.live.capture import Capture
from pamlive.live.health import Part, Snapshot, health_body
from pamlive.live.memory import release_compiler_pages, return_freed_memory
from pamlive.live.observers import (
    BlockObserver,
    LevelMeter,
    SpectrumPublisher,
    WatchdogFeed,
)
from pamlive.live.scoring import Inference
from pamlive.live.spectrum import SpectrumFeed
from pamlive.live.supervise import Supervisor
from pamlive.live.windowing import Windowing
from pamlive.live.wiring import (
    archive_part,
    log_part,
    open_archive,
    open_evidence,
    position_part,
    previous_run_part,
    validation_part,
)
from pamlive.sources import LiveSource
from pamlive.stop import Stop, StopReason

log = logging.getLogger(__name__)

HEALTH_EVERY_S = 1.0


class Service(Protocol):
    """A helper thread that runs beside the stages (a GPS reader, ...)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Engine:
    """One live run: build it (checks everything), then :meth:`run` until stopped."""

    def __init__(self, config: Config, source: LiveSource, kind: OutputKind,
                 bus: AlertBus, on_detection: Callable[[Detection], None] | None = None) -> None:
        """``kind``: the model output's stages (``pamlive/kinds/``: one model's scores, an
        ensemble, an event model's calls)."""
        return_freed_memory()  # freed clips and blocks go back to the system (memory.py)
        self.source = source
        self.bus = bus
        rate, channels = source.sample_rate, source.channels
        self.capture = Capture(source, config.buffers.ring_seconds)
        kind.refuse(Uses(array=config.array is not None))
        self.evidence = open_evidence(config, self.capture.ring)
        pos = open_position_source(config.position, time.time)
        track, position_source = pos if pos else (None, None)
        stages = kind.live(LiveContext(config, rate, channels, bus, self.capture.ring,
                                       self.capture.utc, self.evidence, track, on_detection))
        stages.warm_up()
        outage = inherited_outage()  # this process was re-executed to reopen the device
        watchdog = LivenessWatchdog(channels, config.watchdog, time.monotonic(),
                                    state=State.DEAF if outage else State.OK)
        self.supervisor = Supervisor(watchdog, bus.publish, outage)
        self.levels = LevelMeter(channels)
        observers: list[BlockObserver] = [
            WatchdogFeed(watchdog, rate),
            self.levels,
            SpectrumPublisher(SpectrumFeed(rate, channels, fmax_hz=stages.spectrum_fmax_hz),
                              bus.publish),
        ]
        self.archive = open_archive(config, self.capture, self.evidence)
        if self.archive is not None:
            observers.insert(1, self.archive)
        self.windowing = Windowing(self.capture.ring, stages.windows, observers,
                                   config.buffers.window_queue, chunk=rate)
        self.inference = Inference(stages.infer, self.windowing.queue, config.model.batch_max,
                                   config.buffers.detection_queue)
        self.services: list[Service] = [position_source] if position_source else []
        array = open_array_stage(config.array, self.capture.ring, bus, source, config.station,
                                 position_source)
        if array is not None:  # [array]: channel agreement now, the bearing as a later message
            self.services.append(array)
        self.publisher: LivePublisher = stages.publisher(self.inference.queue,
                                                         [array] if array else [])
        self.health_parts: list[Callable[[], Part | None]] = [
            lambda: Part("clock", self.capture.clock.stats()),
            self.supervisor.part,
            lambda: log_part(bus),
            lambda: previous_run_part(bus),
            lambda: validation_part(bus),
        ]
        self.health_parts += stages.parts
        if self.evidence is not None:
            self.health_parts.append(self.evidence.part)
            self.supervisor.alert_sources.append(self.evidence.worker)
        if self.archive is not None:
            archive = self.archive
            self.health_parts.append(lambda: archive_part(archive))
            self.supervisor.alert_sources.append(self.archive)
        if track is not None and position_source is not None:
            self.health_parts.append(lambda: position_part(track, position_source))
        if array is not None:
            self.health_parts.append(lambda: Part("array", array.health(), tuple(array.flags())))
        self.restart: Outage | None = None
        self.stop_reason = StopReason.FAILED  # until the loop ends as it should
        self._input_done = threading.Event()
        self._started = time.monotonic()
        self._published: Snapshot | None = None  # the snapshot of the last health sent

    @property
    def ring(self) -> RingBuffer:
        return self.capture.ring

    @property
    def detections(self) -> int:
        return self.publisher.detections

    @property
    def failure(self) -> Exception | None:
        return self.windowing.failure or self.inference.failure

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None,
            duration_s: float | None = None) -> Exception | None:
        """Capture until stopped, the duration is up or a finite source ends; flush all.

        Returns the error that ended the run early (already flushed), else None: a source
        error (bad playback file, vanished device) or a processing stage that died (a deaf
        monitor must exit, so its supervisor restarts it, rather than linger).
        """
        stop_event = stop_event or threading.Event()
        self.windowing.start(self._input_done, lambda: self.inference.failure is not None)
        self.inference.start()
        if self.evidence is not None:
            self.evidence.start()
        self._started = time.monotonic()
        for service in self.services:
            service.start()
        self.capture.start()
        deadline = None if duration_s is None else self._started + duration_s
        next_health = self._started + HEALTH_EVERY_S
        rate = self.source.sample_rate
        compiled = False  # every kernel has run once (warm-up, then the first block)
        try:
            while not (stop_event.is_set() or self.capture.ended or self.failure
                       or (deadline is not None and time.monotonic() >= deadline)):
                self.publisher.drain(timeout=0.05)
                self.capture.sync_clock()
                if self.evidence is not None:
                    self.evidence.cut_due(self.ring.written)
                self.supervisor.ready(self.windowing.processed,
                                      f"listening: {self.source.channels} ch at {rate} Hz")
                if not compiled and self.windowing.processed:
                    compiled = True
                    log.debug("LLVM code pages released: %.0f MB",
                              release_compiler_pages() / 1e6)
                now = time.monotonic()
                if now >= next_health:
                    self.supervisor.tick(now, self.windowing.processed, self.source.counters,
                                         rate)
                    self._publish_health()
                    next_health = max(next_health + HEALTH_EVERY_S, now)
                    if self.source.live:
                        self.restart = self.supervisor.restart()
                        if self.restart is not None:
                            break
            self.stop_reason = self._why_stopped(stop_event, deadline)
        finally:
            self._shut_down()
        return self.failure or self.source.error

    def _why_stopped(self, stop_event: threading.Event, deadline: float | None) -> StopReason:
        """What ended the loop (the first cause when several came at once)."""
        if self.restart is not None:
            return StopReason.REEXEC
        if self.failure is not None:
            return StopReason.FAILED
        if self.source.error is not None:
            return StopReason.DEVICE_LOST if self.source.live else StopReason.INPUT_ERROR
        if self.capture.ended:
            return StopReason.END_OF_INPUT
        if isinstance(stop_event, Stop) and stop_event.reason is not None:
            return stop_event.reason  # a signal
        if deadline is not None and time.monotonic() >= deadline:
            return StopReason.DURATION
        return StopReason.REQUESTED

    def _shut_down(self) -> None:
        if self.restart is None:
            self.capture.stop()  # a dead stream is not closed: PortAudio may hang
        self._input_done.set()
        while not self.publisher.ended:
            self.publisher.drain(timeout=0.1)
        self.windowing.join()
        self.inference.join()
        self.publisher.flush(self.ring.written)
        if self.evidence is not None:
            self.evidence.close()
        if self.archive is not None:
            self.archive.close()
        for service in self.services:
            service.stop()
        self.supervisor.forward_alerts()  # failures while the last clips were written
        # the goodbye: "final" tells subscribers this stop is deliberate (or, with a deaf
        # status, why it died), not a lost link; a re-exec to reopen the device is none
        final = self.restart is None
        self._publish_health(final=final)
        if self.failure is not None:
            # a dying monitor says why once more, a health period later, for
            # subscribers that (re)joined in the meantime
            time.sleep(HEALTH_EVERY_S)
            self._publish_health(final=final)
        self.supervisor.stopping()

    # -- health --------------------------------------------------------------------------

    def _publish_health(self, final: bool | None = None) -> None:
        """Send health; ``final`` (the last message of the run) and why, only at shutdown."""
        snap = self.snapshot()
        body = health_body(snap, self._published)
        if final is not None:
            body["final"] = final
            body["stop_reason"] = str(self.stop_reason)
        self.bus.publish_health(body)
        self._published = snap

    def health(self, now: float | None = None) -> dict[str, Any]:
        """The health body as it would be sent now (changes nothing)."""
        return health_body(self.snapshot(now), self._published)

    def snapshot(self, now: float | None = None) -> Snapshot:
        """Every stage's counters, read now (each written by one thread, read here)."""
        cap = self.source.counters
        bus = self.bus.stats()
        ring = self.ring
        sumsq, count = self.levels.snapshot()
        wq = self.windowing.queue
        parts = tuple(p for p in (make() for make in self.health_parts) if p is not None)
        return Snapshot(
            now=time.monotonic() if now is None else now, started=self._started,
            running=not self._input_done.is_set(), last_audio_at=ring.last_arrival(),
            sample_rate=self.source.sample_rate, channels=self.source.channels,
            written=ring.written, capture=cap.as_dict(), callback_errors=cap.errors,
            ring_capacity=ring.capacity, ring_fill=ring.fill(), ring_lost=ring.lost_samples,
            windows=self.windowing.cut, window_drops=self.windowing.drops,
            window_queue_fill=wq.qsize() / wq.maxsize, batches=self.inference.batches,
            mean_batch_ms=self.inference.mean_batch_ms(),
            inference_errors=self.inference.errors, score_drops=self.inference.drops,
            publish_drops=bus["dropped"], latency_ms=bus["latency_ms"],
            level_sumsq=sumsq, level_count=count, failed=self.failure is not None,
            source_failed=self.source.error is not None,
            watchdog_status=self.supervisor.watchdog.status,
            watchdog_flags=tuple(self.supervisor.watchdog.flags), parts=parts)
