"""The live monitor: capture -> ring -> windows -> ONNX -> merge -> alert bus, in threads.

Threads and what joins them::

    source (audio callback / replay thread) --RingBuffer--> windowing thread
        --window queue (bounded)--> inference thread (windows batched across channels)
        --score queue (bounded)--> publisher loop (WindowMerger, alert bus, health)

Nothing upstream ever waits for anything downstream: a full queue drops the item and
counts it, an overrun ring loses its oldest audio and counts every sample. The windows
are cut by the same :class:`~pamlive.pipeline.Windower` and merged by the same
:class:`~pamlive.detection.WindowMerger` as ``pamlive analyze``, so live detections are
the events analyze finds in the same audio. Every time comes from the sample clock.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.events import alert_body
from pamlive.alerts.schema import utc_at_sample, utc_iso
from pamlive.array.live import open_array_stage
from pamlive.buffers import RingBuffer
from pamlive.config import Config, data_path
from pamlive.dashboard.spectrum import SPECTRUM_TOPIC, SpectrumFeed
from pamlive.detection import Detection, Onset
from pamlive.errors import ConfigError, PamliveError
from pamlive.field.archive import RawArchive
from pamlive.field.clips import ClipWriter, PendingClips
from pamlive.field.position import open_position_source
from pamlive.field.reexec import Outage, inherited_outage, reexec
from pamlive.field.sdnotify import Notifier, ProgressPinger, watchdog_interval_s
from pamlive.field.watchdog import DeviceRecovery, LivenessWatchdog, State
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.pipeline import Window, Windower, classify_windows, make_merger
from pamlive.sources import LiveSource

log = logging.getLogger(__name__)

POLL_S = 0.01  # how often the windowing thread looks at the ring (the callback never signals)
HEALTH_EVERY_S = 1.0
DEAF_AFTER_S = 2.0  # no audio for this long while running: status "deaf"
SPECTRUM_FMAX_HZ = 500.0  # the dashboard strip shows 0..500 Hz, where right whale calls are
_END = object()  # end-of-stream marker passed down the queues


@dataclass
class PipelineCounters:
    """Counts kept by the processing threads (each field written by one thread only)."""

    windows: int = 0  # windows cut
    window_drops: int = 0  # windows dropped because the inference queue was full
    batches: int = 0
    inference_errors: int = 0
    score_drops: int = 0  # scored windows dropped because the merge queue was full
    detections: int = 0


class _GapTolerantWindows:
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

    def _shift(self, windows: list[Window]) -> list[Window]:
        so, io = self._sample_offset, self._index_offset
        out = [Window(w.index + io, w.start_sample + so, w.end_sample + so, w.ready_sample + so,
                      w.features) for w in windows]
        if out:
            self._last_index = out[-1].index
        return out


class _LevelMeter:
    """Running per-channel sum of squares; the health message reads the change per second."""

    def __init__(self, channels: int) -> None:
        self.sumsq = np.zeros(channels, np.float64)
        self.count = 0
        self._last_sumsq = self.sumsq.copy()
        self._last_count = 0

    def add(self, block: np.ndarray) -> None:
        self.sumsq += np.einsum("ij,ij->j", block, block, dtype=np.float64)
        self.count += block.shape[0]

    def dbfs_since_last(self) -> list[float | None]:
        sumsq, count = self.sumsq.copy(), self.count
        n = count - self._last_count
        delta = sumsq - self._last_sumsq
        self._last_sumsq, self._last_count = sumsq, count
        if n <= 0:
            return [None] * sumsq.shape[0]
        rms = np.sqrt(np.maximum(delta, 0.0) / n)
        return [round(float(20 * np.log10(max(r, 1e-10))), 1) for r in rms]


class Monitor:
    """One live run: build it (checks everything), then :meth:`run` until stopped."""

    def __init__(self, config: Config, source: LiveSource, package: ModelPackage,
                 bus: AlertBus, on_detection: Callable[[Detection], None] | None = None) -> None:
        self.config = config
        self.source = source
        self.package = package
        self.bus = bus
        self.on_detection = on_detection
        rate, channels = source.sample_rate, source.channels
        self.ring = RingBuffer(channels, max(1, round(config.buffers.ring_seconds * rate)))
        chain = package.chain()
        self.classifier = Classifier(package, threads=config.model.threads)
        self.classifier.check_features(chain.output_shape(package.segment_samples))
        self.merger = make_merger(package, rate, config.model.max_merge, config.model.thresholds)
        self._windows = _GapTolerantWindows(
            lambda: Windower(chain, rate, channels, package.segment_s, config.model.hop_s)
        )
        self.window_queue: queue.Queue = queue.Queue(maxsize=config.buffers.window_queue)
        self.score_queue: queue.Queue = queue.Queue(maxsize=config.buffers.detection_queue)
        self.counters = PipelineCounters()
        self.levels = _LevelMeter(channels)
        # the strip shows the model's band, at most 0..500 Hz where right whales call
        fmax = min(package.sample_rate / 2, SPECTRUM_FMAX_HZ)
        self.spectrum = SpectrumFeed(rate, channels, fmax_hz=fmax)
        self._spectrum_fed = 0
        self._input_done = threading.Event()
        self._scores_ended = False  # the end-of-stream marker came through the score queue
        self._failure: Exception | None = None  # a processing thread died of this
        self._threads: list[threading.Thread] = []
        self._started = time.monotonic()
        self._last_frames_at = time.monotonic()
        self._last_health: dict[str, int] = {}
        self._batch_ms: deque[float] = deque(maxlen=64)
        self.watchdog_settings = config.watchdog
        self.outage = inherited_outage()
        self.watchdog = LivenessWatchdog(channels, self.watchdog_settings, time.monotonic(),
                                         state=State.DEAF if self.outage else State.OK)
        self.restart: Outage | None = None
        self._deaf_since: float | None = None
        self.notifier = Notifier.from_env()
        self.pinger = ProgressPinger(self.notifier, watchdog_interval_s())
        self.processed = 0  # samples the windowing thread has taken (for WATCHDOG=1)
        self._ready_sent = False
        clip_settings = config.clips
        log_dir = (data_path(config, config.alerts.log).parent if config.alerts.log
                   else config.data_dir)
        self.clips = (ClipWriter(log_dir / clip_settings.directory, clip_settings)
                      if clip_settings.enabled else None)
        self.pending_clips = PendingClips(clip_settings.max_pending)
        self.archive_settings = config.archive
        self.archive: RawArchive | None = None
        if self.archive_settings.enabled:  # made now: later, a failure would stop the run
            archive_dir = data_path(config, Path(self.archive_settings.directory))
            try:
                archive_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"[archive] cannot create {archive_dir}: "
                                  f"{exc.strerror or exc}") from None
        pos = open_position_source(config.position, time.time)
        self.track, self._position_source = pos if pos else (None, None)
        self.array = open_array_stage(config.array, self.ring, bus, source,
                                      config.station, self._position_source)

    # -- windowing thread ------------------------------------------------------------

    def _cut_windows(self) -> None:
        chunk = self.source.sample_rate  # at most a second per pass: bounded temporaries
        try:
            while True:
                res = self.ring.read(max_frames=chunk)
                if res.data.shape[0]:
                    self.watchdog.observe_block(res.data, time.monotonic())
                    self._archive(res.start_sample, res.data)
                    self.processed += res.data.shape[0]
                    self.levels.add(res.data)
                    self._feed_spectrum(res.data)
                    self._offer_windows(self._windows.push(res.start_sample, res.data))
                elif self._input_done.is_set() and self.ring.read_position >= self.ring.written:
                    break
                else:
                    time.sleep(POLL_S)
            self._offer_windows(self._windows.flush())
        except Exception as exc:
            self._fail("windowing", exc)
        finally:
            while True:  # the end marker must not be dropped, unless no one is left to read it
                try:
                    self.window_queue.put(_END, timeout=0.5)
                    break
                except queue.Full:
                    if self._failure is not None:
                        break

    def _feed_spectrum(self, block: np.ndarray) -> None:
        """Spectrum rows are for eyes: a replay faster than real time shows a sample of them
        (blocks are skipped while the fed audio is more than a second ahead of the wall
        clock), so accelerated runs do not spend their time on pictures."""
        if self._spectrum_fed / self.source.sample_rate > time.monotonic() - self._started + 1:
            return
        self._spectrum_fed += block.shape[0]
        for body in self.spectrum.push(block):
            self.bus.publish(SPECTRUM_TOPIC, body)

    def _archive(self, start_sample: int, block: np.ndarray) -> None:
        if not self.archive_settings.enabled:
            return
        if self.archive is None:
            start = self.source.start_utc
            if start is None:
                return
            self.archive = RawArchive(
                data_path(self.config, Path(self.archive_settings.directory)),
                self.clips.directory if self.clips else None, self.source.sample_rate,
                self.source.channels, start, self.archive_settings)
        self.archive.submit(block, start_sample)

    def _offer_windows(self, windows: list[Window]) -> None:
        for w in windows:
            self.counters.windows += 1
            try:
                self.window_queue.put_nowait(w)
            except queue.Full:
                self.counters.window_drops += 1

    # -- inference thread ------------------------------------------------------------

    def _infer(self) -> None:
        try:
            while self._infer_batch():
                pass
        except Exception as exc:
            self._fail("inference", exc)
        finally:
            self.score_queue.put(_END)

    def _fail(self, stage: str, exc: Exception) -> None:
        log.exception("%s thread failed; the monitor is deaf and stops", stage)
        self._failure = RuntimeError(f"the {stage} stage stopped: {exc}")

    def _infer_batch(self) -> bool:
        """Score what is queued (up to ``batch_max`` windows); False at the end of stream."""
        batch = [self.window_queue.get()]
        while batch[-1] is not _END and len(batch) < self.config.model.batch_max:
            try:
                batch.append(self.window_queue.get_nowait())
            except queue.Empty:
                break
        ended = batch[-1] is _END
        if ended:
            batch.pop()
        if not batch:
            return not ended
        t0 = time.perf_counter()
        try:
            scores = classify_windows(self.classifier, batch)
        except Exception:
            self.counters.inference_errors += len(batch)
            log.exception("inference failed on %d window(s)", len(batch))
            return not ended
        ms = (time.perf_counter() - t0) * 1000.0
        self.counters.batches += 1
        self._batch_ms.append(ms)
        for w, s in zip(batch, scores, strict=True):
            try:
                self.score_queue.put_nowait((w, s))
            except queue.Full:
                self.counters.score_drops += 1
        return not ended

    # -- publisher loop (the caller's thread) -----------------------------------------

    def run(self, stop_event: threading.Event | None = None,
            duration_s: float | None = None) -> Exception | None:
        """Capture until stopped, the duration is up or a finite source ends; flush all.

        Returns the error that ended the run early (already flushed), else None: a source
        error (bad replay file, vanished device) or a processing stage that died (a deaf
        monitor must exit, so its supervisor restarts it, rather than linger).
        """
        stop_event = stop_event or threading.Event()
        self._threads = [
            threading.Thread(target=self._cut_windows, name="pamlive-windows", daemon=True),
            threading.Thread(target=self._infer, name="pamlive-inference", daemon=True),
        ]
        for t in self._threads:
            t.start()
        if self.array is not None:
            self.array.start()
        self._started = self._last_frames_at = time.monotonic()
        if self._position_source is not None:
            self._position_source.start()
        self.source.start(self.ring)
        deadline = None if duration_s is None else self._started + duration_s
        next_health = self._started + HEALTH_EVERY_S
        try:
            device = self.config.source.kind == "device"
            while not (stop_event.is_set() or (self.source.finished and not device)
                       or self._failure
                       or (deadline is not None and time.monotonic() >= deadline)):
                self._merge_scores(timeout=0.05)
                self._write_clips(self.ring.written)
                if not self._ready_sent and self.processed > 0:
                    self._ready_sent = self.notifier.ready(
                        f"listening: {self.source.channels} ch at {self.source.sample_rate} Hz")
                now = time.monotonic()
                if now >= next_health:
                    self._watch(now)
                    self.bus.publish_health(self.health())
                    next_health = max(next_health + HEALTH_EVERY_S, now)
                    if device and self.watchdog.needs_restart:
                        prev = self.outage.restarts + 1 if self.outage else 0
                        self.restart = Outage(self._deaf_since or time.time(), prev,
                                              tuple(self.watchdog.reasons))
                        break
        finally:
            if self.restart is None:
                self.source.stop()  # a dead stream is not closed: PortAudio may hang
            self._input_done.set()
            while not self._scores_ended:
                self._merge_scores(timeout=0.1)
            for t in self._threads:
                t.join()
            self._publish_all(self.merger.flush(self.ring.written), self.ring.written)
            if self.array is not None:
                self.array.stop()
            self._write_clips(None)
            if self.archive is not None:
                self.archive.close()
            if self._position_source is not None:
                self._position_source.stop()
            # the goodbye: "final" tells subscribers this stop is deliberate (or, with a
            # deaf status, why it died), not a lost link
            final = self.restart is None  # a re-exec to reopen the device is no goodbye
            self.bus.publish_health({**self.health(), "final": final})
            if self._failure is not None:
                # a dying monitor says why once more, a health period later, for
                # subscribers that (re)joined in the meantime
                time.sleep(HEALTH_EVERY_S)
                self.bus.publish_health({**self.health(), "final": final})
            self.notifier.stopping("stopping")
        return self._failure or self.source.error

    def _write_clips(self, written: int | None) -> None:
        """Clips whose post-roll has arrived (all of them at shutdown: ``written=None``)."""
        if self.clips is None:
            return
        for job in self.pending_clips.pop_due(2**62 if written is None else written):
            got = self.ring.peek(job.start_sample, job.end_sample)
            try:
                if got is None:
                    raise ValueError("the ring no longer holds it")
                self.clips.write(job, got.data, got.start_sample)
            except (OSError, ValueError) as exc:
                log.error("clip %s not written: %s", job.audio_path.name, exc)

    def _watch(self, now: float) -> None:
        self.pinger.maybe_ping(self.processed, now)
        self.notifier.status(f"{self.watchdog.status}: "
                             f"{self.processed / self.source.sample_rate:.0f} s processed")
        if self.archive is not None:
            for cls, message in self.archive.drain_events():
                self.bus.publish(f"alert.{cls}", {
                    "schema": "pamlive.health_alert/1", "class": cls, "reasons": [message],
                    "time_utc": utc_iso(datetime.now(UTC))})
        cap = self.source.counters
        self.watchdog.observe_capture(cap.callbacks, cap.overflows, now)
        for t in self.watchdog.tick(now):
            if t.state is State.DEAF:
                self._deaf_since = time.time()
            log.warning("%s: %s", t.alert_class, "; ".join(t.reasons))
            self.bus.publish(f"alert.{t.alert_class}",
                             t.alert_body(utc_iso(datetime.now(UTC))))

    def _merge_scores(self, timeout: float) -> None:
        """Merge what the inference thread scored within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self._scores_ended:
            try:
                item = self.score_queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if item is _END:
                self._scores_ended = True
                return
            w, scores = item
            # onsets (the early alerts) and closed detections, in the order they happened
            events = self.merger.push_events(w.index, w.start_sample, w.end_sample, scores)
            self._publish_all(events, w.end_sample)

    def _publish_all(self, events: Sequence[Onset | Detection], last_sample: int) -> None:
        """Publish the merge rule's events; ``last_sample`` ends (exclusive) the window that
        triggered them: their ``latency_ms`` runs from that sample's arrival."""
        if not events:
            return
        arrival = self.ring.arrival_time(last_sample - 1)
        ready = time.monotonic() if arrival is None else arrival
        start_utc = self.source.start_utc
        for det in events:
            if self.array is not None and not self.array.accepts(det):
                continue  # heard on too few channels: not the array's detection
            det_utc = utc_at_sample(start_utc, det.start_sample, det.sample_rate)
            position = self.track.at(det_utc.timestamp()) if self.track else None
            job = None
            if isinstance(det, Detection):
                self.counters.detections += 1
                job = self.clips.plan(det, det_utc) if self.clips else None
                if job is not None and not self.pending_clips.add(job):
                    job = None
            body = alert_body(det, run_id=self.bus.run_id, station=self.config.station,
                              stream_start_utc=start_utc, model=self.package,
                              position=position.as_dict() if position else None,
                              clip=str(job.audio_path) if job else None)
            if isinstance(det, Onset):
                self.bus.publish_onset(body, ready_monotonic=ready)
                log.info("onset %s score %.2f at %s", det.class_name, det.score,
                         body["start_utc"])
                continue
            self.bus.publish_detection(body, ready_monotonic=ready)
            if self.array is not None:  # the bearing follows as a bearing.<class> message
                self.array.published(det, body, det_utc)
            log.info("detection %s score %.2f at %s (channels %s)", det.class_name, det.score,
                     body["start_utc"], ",".join(map(str, det.channels)))
            if self.on_detection is not None:
                self.on_detection(det)

    # -- health ------------------------------------------------------------------------

    def health(self) -> dict:
        """The ``pamlive.health/1`` body (the bus adds run_id, seq, time_utc, station)."""
        now = time.monotonic()
        cap = self.source.counters
        bus = self.bus.stats()
        c = self.counters
        totals = {
            "frames": cap.frames, "overflows": cap.overflows, "ring": self.ring.lost_samples,
            "windows": c.window_drops, "scores": c.score_drops, "publish": bus["dropped"],
            "inference": c.inference_errors, "callback_errors": cap.errors,
        }
        new = {k: v - self._last_health.get(k, 0) for k, v in totals.items()}
        self._last_health = totals
        if new["frames"] > 0:
            self._last_frames_at = now
        flags = [name for name, key in (
            ("input_overflow", "overflows"), ("ring_overrun", "ring"),
            ("window_drops", "windows"), ("score_drops", "scores"),
            ("publish_drops", "publish"), ("inference_errors", "inference"),
            ("callback_errors", "callback_errors"),
        ) if new[key] > 0]
        running = not self._input_done.is_set()
        if running and now - self._last_frames_at > DEAF_AFTER_S:
            flags.append("no_audio")
        if self._failure is not None:
            flags.append("pipeline_stopped")
        if self.source.error is not None:
            flags.append("source_failed")
        flags += bus["log"]["flags"]  # a failing detection log degrades, never deafens
        deaf = {"no_audio", "pipeline_stopped", "source_failed"} & set(flags)
        status = "deaf" if deaf else ("degraded" if flags else "ok")
        severity = ("ok", "degraded", "deaf")
        status = max(status, self.watchdog.status, key=severity.index)
        flags = self.watchdog.flags + flags
        if self.archive is not None:
            flags += self.archive.flags
        if self.track is not None:
            flags += self.track.flags(time.time())
        if self.array is not None:
            flags += self.array.flags()
        rate = self.source.sample_rate
        return {
            "uptime_s": round(now - self._started, 3),
            "status": status,
            "flags": flags,
            "sample_rate": rate,
            "channels": self.source.channels,
            "stream_time_s": round(self.ring.written / rate, 3),
            "capture": cap.as_dict(),
            "ring": {"capacity_s": round(self.ring.capacity / rate, 3),
                     "fill": round(self.ring.fill(), 4),
                     "overwritten_samples": self.ring.lost_samples},
            "inference": {"windows": c.windows, "batches": c.batches,
                          "queue_fill": round(self.window_queue.qsize()
                                              / self.window_queue.maxsize, 4),
                          "mean_batch_ms": (round(float(np.mean(self._batch_ms)), 3)
                                            if self._batch_ms else None)},
            "latency_ms": bus["latency_ms"],  # p50/p95 over recent alerts (alerts/latency.py)
            "drops": {"ring_samples": self.ring.lost_samples, "window_queue": c.window_drops,
                      "detection_queue": c.score_drops, "publish": bus["dropped"]},
            "level_dbfs": self.levels.dbfs_since_last(),
            "log": {k: bus["log"][k] for k in ("rows", "unlogged", "error")},
            **({"array": self.array.health()} if self.array is not None else {}),
        }


# -- building and running ----------------------------------------------------------------


def open_source(config: Config) -> LiveSource:
    """The configured source, with every setting checked (raises PamliveError)."""
    s = config.source
    if s.kind == "device":
        from pamlive.sources.device import DeviceSource

        return DeviceSource(s.device, s.channels, s.samplerate, s.blocksize, s.latency)
    from pamlive.sources.replay import replay_source, simulator_source

    if s.kind == "replay":
        return replay_source(s.files, speed=s.speed, loop=s.loop, blocksize=s.blocksize)
    from pamlive.sources.simulator import SimulatedArray

    return simulator_source(SimulatedArray(config.simulator, seed=config.simulator.seed),
                            blocksize=s.blocksize, speed=s.speed)


def _open_source_waiting(config: Config, stop_event) -> LiveSource | None:
    """After a re-exec for recovery: wait (backoff) until the device is back."""
    import sounddevice as sd

    w = config.watchdog
    rec = DeviceRecovery(w.restart_initial_s, w.restart_max_s)
    rec.lost(time.monotonic())
    notifier = Notifier.from_env()
    pinger = ProgressPinger(notifier, watchdog_interval_s())
    stop_event = stop_event or threading.Event()
    with _stop_on_signals(stop_event):
        while not stop_event.is_set():
            now = time.monotonic()
            pinger.maybe_ping(0, now, recovering=True)
            if rec.due(now):
                sd._terminate()  # a fresh PortAudio sees a replugged device / new server
                sd._initialize()
                try:
                    source = open_source(config)
                except PamliveError as exc:
                    delay = rec.failed(now)
                    notifier.status(f"deaf: waiting for the input device ({exc})")
                    log.warning("input device not back yet (%s); retry in %.1f s", exc, delay)
                else:
                    rec.succeeded()
                    return source
            stop_event.wait(0.1)
    return None


def open_bus(config: Config) -> AlertBus:
    """The alert bus from ``[alerts]``, its log inside the data directory."""
    alerts = asdict(config.alerts)
    if config.alerts.log is not None:
        alerts["log"] = data_path(config, config.alerts.log)  # its folder is made on opening
    return AlertBus.from_config(alerts, station=config.station)


@contextlib.contextmanager
def _stop_on_signals(stop_event: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM/SIGHUP set ``stop_event`` (clean shutdown) while the monitor runs.

    SIGHUP is what a foreground monitor gets when its SSH session drops: it must flush
    (pending clips, log, final health) and say it stopped, like any other stop.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop_event.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _setup_logging(headless: bool) -> None:
    if headless and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_live(config: Config, source: LiveSource, *, headless: bool, duration_s: float | None,
              stop_event: threading.Event | None,
              on_detection: Callable[[Detection], None] | None = None) -> int:
    """Build the monitor and the bus (all checks first), then run with or without dashboard."""
    if config.model.members:  # never run a different model than the config asks for
        raise ConfigError("[[model.members]]: model ensembles run in `pamlive analyze` only, "
                          "not yet in the live monitor")
    package = load_model_package(config.model.path)
    bus = open_bus(config)
    monitor = Monitor(config, source, package, bus, on_detection=on_detection)
    bus.start()  # a port already in use fails here, before capture starts
    stop_event = stop_event or threading.Event()
    log.info("pamlive %s: %s, %d ch at %d Hz, model %s %s, alerts on %s", bus.run_id,
             source.name, source.channels, source.sample_rate, package.name, package.version,
             bus.endpoint)
    error: Exception | None = None
    try:
        with _stop_on_signals(stop_event):
            if headless:
                error = monitor.run(stop_event, duration_s)
            else:
                error = _run_with_dashboard(config, monitor, bus, stop_event, duration_s)
    finally:
        bus.close()
    h = monitor.health()
    log.info("stopped: %.1f s of audio, %d detection(s), lost %d ring samples, dropped %d "
             "window(s), %d score(s), %d message(s); %d alert(s) could not be logged",
             h["stream_time_s"], monitor.counters.detections, h["drops"]["ring_samples"],
             h["drops"]["window_queue"], h["drops"]["detection_queue"], h["drops"]["publish"],
             h["log"]["unlogged"])
    if h["log"]["unlogged"]:  # a warning: shown on stderr with the dashboard on, too
        log.warning("%d alert(s) (detections and onsets) were published but are not in "
                    "the detection log (%s)",
                    h["log"]["unlogged"], h["log"]["error"] or "write failed")
    if monitor.restart is not None:
        log.warning("reopening the input device: re-executing pamlive in place")
        reexec(monitor.restart)
    if error is not None:
        print(f"pamlive: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, PamliveError) else 1
    return 0


def _run_with_dashboard(config: Config, monitor: Monitor, bus: AlertBus,
                        stop_event: threading.Event, duration_s: float | None) -> Exception | None:
    """The monitor in a thread, the dashboard in this (the main) thread."""
    from pamlive.dashboard import run_dashboard

    result: list[Exception | None] = [None]

    def work() -> None:
        try:
            result[0] = monitor.run(stop_event, duration_s)
        finally:
            stop_event.set()

    t = threading.Thread(target=work, name="pamlive-monitor")
    t.start()
    try:
        run_dashboard(bus.endpoint, replay_endpoint=bus.replay_endpoint,
                      channel=config.dashboard.channel, stop_event=stop_event,
                      duration_s=duration_s, bell=config.dashboard.bell)
    finally:
        stop_event.set()
        t.join()
    return result[0]


def run_monitor(config: Config, *, headless: bool, duration_s: float | None,
                stop_event: threading.Event | None = None) -> int:
    """``pamlive run``: the configured source through the live pipeline until stopped."""
    _setup_logging(headless)
    source = _open_source_waiting(config, stop_event) if inherited_outage() else open_source(config)
    if source is None:
        return 0
    return _run_live(config, source, headless=headless, duration_s=duration_s,
                     stop_event=stop_event)


def run_demo(config: Config, *, headless: bool, duration_s: float | None,
             stop_event: threading.Event | None = None, truth_path: Path | None = None) -> int:
    """``pamlive demo``: the simulated array through the live pipeline, then a tally;
    ``truth_path``: where to write the simulated events as JSON lines."""
    from pamlive.evaluate import Event, match_counts
    from pamlive.sources.replay import simulator_source
    from pamlive.sources.simulator import SimulatedArray

    if truth_path is not None and not truth_path.parent.is_dir():  # found before the run
        raise PamliveError(f"--truth: folder {truth_path.parent} does not exist")
    _setup_logging(headless)
    array = SimulatedArray(config.simulator, seed=config.simulator.seed)
    source = simulator_source(array, blocksize=config.source.blocksize,
                              speed=config.source.speed)
    found: list[Detection] = []
    code = _run_live(config, source, headless=headless, duration_s=duration_s,
                     stop_event=stop_event, on_detection=found.append)
    rate = source.sample_rate
    heard_s = source.counters.frames / rate
    detected = [Event(d.start_sample / rate, d.end_sample / rate) for d in found]
    truth = [Event(c.start_sample / rate, c.end_sample / rate) for c in array.ground_truth]
    calls = [t for t in truth if t.end <= heard_s]  # those the run lasted long enough for
    hits, _ = match_counts(detected, calls)
    false = len(detected) - match_counts(detected, truth)[1]
    print(f"demo: {hits} of {len(calls)} simulated call(s) detected, "
          f"{false} detection(s) matched no simulated call", file=sys.stderr)
    if truth_path is not None and source.start_utc is not None:
        try:
            n = array.write_truth(truth_path, source.start_utc)
        except OSError as exc:
            raise PamliveError(f"cannot write ground truth {truth_path}: "
                               f"{exc.strerror or exc}") from None
        print(f"demo: {n} simulated event(s) -> {truth_path}", file=sys.stderr)
    return code

