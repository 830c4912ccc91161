"""The live app: ``pamlive run`` and ``pamlive demo`` around the engine.

What the engine does not know about: which source the config asks for, the alert bus's
endpoints, signals (SIGINT/SIGTERM/SIGHUP stop cleanly, named as the stop reason), the
dashboard in the main thread, exit codes (0 fine, 2 a bad input named in one line, 1 a
crash; per stop reason in docs/contracts.md), re-executing the process to
reopen a dead sound card, and the demo's tally of simulated calls.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from pamlive.alerts.bus import AlertBus
from pamlive.config import Config, data_path
from pamlive.detection import Detection
from pamlive.engine import Engine
from pamlive.errors import PamliveError
from pamlive.field.recovery import DeviceRecovery
from pamlive.field.reexec import inherited_outage, reexec
from pamlive.field.sdnotify import Notifier, ProgressPinger, watchdog_interval_s
from pamlive.kinds import open_kind
from pamlive.sources import LiveSource
from pamlive.stop import DESCRIPTIONS, SIGNALS, Stop, request_stop

log = logging.getLogger(__name__)


def open_source(config: Config) -> LiveSource:
    """The configured source, with every setting checked (raises PamliveError)."""
    s = config.source
    if s.kind == "device":
        from pamlive.sources.device import DeviceSource

        return DeviceSource(s.device, s.channels, s.samplerate, s.blocksize, s.latency)
    from pamlive.sources.playback import playback_source, simulator_source

    if s.kind == "replay":  # the config's word for paced playback of files
        return playback_source(s.files, speed=s.speed, loop=s.loop, blocksize=s.blocksize)
    from pamlive.sources.simulator import SimulatedArray

    return simulator_source(SimulatedArray(config.simulator, seed=config.simulator.seed),
                            blocksize=s.blocksize, speed=s.speed)


def _open_source_waiting(config: Config,
                         stop_event: threading.Event | None) -> LiveSource | None:
    """After a re-exec for recovery: wait (backoff) until the device is back."""
    import sounddevice as sd

    w = config.watchdog
    rec = DeviceRecovery(w.restart_initial_s, w.restart_max_s)
    rec.lost(time.monotonic())
    notifier = Notifier.from_env()
    pinger = ProgressPinger(notifier, watchdog_interval_s())
    stop_event = stop_event or Stop()
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
    """SIGINT/SIGTERM/SIGHUP set ``stop_event`` (clean shutdown, the signal its reason)
    while the monitor runs.

    SIGHUP is what a foreground monitor gets when its SSH session drops: it must flush
    (pending clips, log, final health) and say it stopped, like any other stop.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for sig in previous:
        signal.signal(sig, lambda signum, _: request_stop(stop_event, SIGNALS[signum]))
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
    """Build the engine and the bus (all checks first), then run with or without dashboard."""
    kind = open_kind(config.model)
    bus = open_bus(config)
    engine = Engine(config, source, kind, bus, on_detection=on_detection)
    bus.start()  # a port already in use fails here, before capture starts
    stop_event = stop_event or Stop()
    log.info("pamlive %s: %s, %d ch at %d Hz, model %s %s, alerts on %s", bus.run_id,
             source.name, source.channels, source.sample_rate, kind.name, kind.version,
             bus.endpoint)
    error: Exception | None = None
    try:
        with _stop_on_signals(stop_event):
            if headless:
                error = engine.run(stop_event, duration_s)
            else:
                error = _run_with_dashboard(config, engine, bus, stop_event, duration_s)
    finally:
        bus.close(engine.stop_reason, final=engine.restart is None)
    h = engine.health()
    unlogged = bus.stats()["log_errors"]
    log.info("stopped: %s [%s]; %.1f s of audio, %d %s, lost %d ring samples, dropped %d "
             "window(s), %d score(s), %d message(s); %d alert(s) could not be logged",
             DESCRIPTIONS[engine.stop_reason], engine.stop_reason,
             h["stream_time_s"], engine.detections, kind.noun,
             h["drops"]["ring_samples"],
             h["drops"]["window_queue"], h["drops"]["detection_queue"], h["drops"]["publish"],
             unlogged)
    if unlogged:  # a warning: shown on stderr with the dashboard on, too
        log.warning("%d alert(s) (detections and onsets) were published but are not in "
                    "the detection log (%s)",
                    unlogged, (h.get("log") or {}).get("error") or "write failed")
    if engine.restart is not None:
        log.warning("reopening the input device: re-executing pamlive in place")
        reexec(engine.restart)
    if error is not None:
        print(f"pamlive: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, PamliveError) else 1
    return 0


def _run_with_dashboard(config: Config, engine: Engine, bus: AlertBus,
                        stop_event: threading.Event, duration_s: float | None) -> Exception | None:
    """The engine in a thread, the dashboard in this (the main) thread."""
    from pamlive.dashboard import run_dashboard

    result: list[Exception | None] = [None]

    def work() -> None:
        try:
            result[0] = engine.run(stop_event, duration_s)
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
    """``pamlive run``: the configured source through the live engine until stopped."""
    _setup_logging(headless)
    source = _open_source_waiting(config, stop_event) if inherited_outage() else open_source(config)
    if source is None:
        return 0
    return _run_live(config, source, headless=headless, duration_s=duration_s,
                     stop_event=stop_event)


def run_demo(config: Config, *, headless: bool, duration_s: float | None,
             stop_event: threading.Event | None = None, truth_path: Path | None = None) -> int:
    """``pamlive demo``: the simulated array through the live engine, then a tally;
    ``truth_path``: where to write the simulated events as JSON lines."""
    from pamlive.evaluate import Event, match_counts
    from pamlive.sources.playback import simulator_source
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
