"""The alert bus: one publisher thread that logs alerts durably, then publishes.

Alerts are detections and onsets (a detection as it opens: the early alert), an array's
bearings (each a later message for a detection), and an event model's calls and
per-minute call summaries.

Callers only enqueue (bounded, never blocking, every drop counted); the publisher thread
owns the PUB socket and the log writer, numbers every message (``seq``), commits each
batch of detections to the log before sending any of it, and sends a heartbeat every
``heartbeat_s`` even when idle, so subscribers can tell a quiet sea from a dead monitor;
closing it says goodbye (a last heartbeat with ``"final": true``), so they can tell a
clean stop from a lost monitor too. At start it closes what a run that died left open
(``runs.py``). Operators' verdicts come in on the replay socket (``verdicts.py``) and go
out like alerts: logged, then published.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from pamlive.alerts.latency import DETECTION, LatencyTracker
from pamlive.alerts.log import DetectionLog, LoggedDetection, LogReader, LogState
from pamlive.alerts.replay import MAX_FRAME_BYTES, ReplayServer
from pamlive.alerts.runs import UncleanRun, closing_detection
from pamlive.alerts.schema import (
    BEARING_SCHEMA,
    CALL_SCHEMA,
    CALL_SUMMARY_SCHEMA,
    CALL_SUMMARY_TOPIC,
    HEALTH_SCHEMA,
    HEARTBEAT_SCHEMA,
    ONSET_SCHEMA,
    VALIDATION_SCHEMA,
    bearing_topic,
    call_topic,
    detection_topic,
    logged_kind,
    new_run_id,
    onset_topic,
    parse_utc,
    utc_iso,
)
from pamlive.alerts.security import (
    CurveConfig,
    CurveServer,
    check_bind_allowed,
    is_loopback_endpoint,
)
from pamlive.alerts.validation import validation_topic
from pamlive.alerts.verdicts import Operators, VerdictDesk, VerdictStore
from pamlive.checks import build_section
from pamlive.config import AlertsConfig
from pamlive.errors import ConfigError
from pamlive.stop import StopReason

log = logging.getLogger(__name__)

_BATCH = 512  # messages handled per wake-up: bounds one log transaction
_PRUNE_EVERY_S = 3600.0
_LATENCY_WINDOW = 1000
HEALTH_ALERT_SCHEMA = "pamlive.health_alert/1"
_WAKE: Any = object()  # queued by close() so the publisher thread notices at once
_OFF = {"replay": None, "log": None, "retention_days": None}  # absent from a plain table


class AlertBus:
    """ZeroMQ PUB bus with a durable detection log and a replay ROUTER (docs/contracts.md §2)."""

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5556",
        *,
        station: str,
        run_id: str | None = None,
        log_path: Path | None = None,
        replay_endpoint: str | None = None,
        allow_insecure: bool = False,
        curve: CurveConfig | None = None,
        queue_size: int = 10000,
        heartbeat_s: float = 1.0,
        retention_days: float | None = None,
        operators: Operators | None = None,
    ) -> None:
        if heartbeat_s <= 0 or queue_size < 1:
            raise ConfigError("alerts: heartbeat_s and queue_size must be positive")
        self.endpoint = endpoint
        self.replay_endpoint = replay_endpoint
        self.station = station
        self.run_id = run_id or new_run_id()
        self._log_path = Path(log_path) if log_path is not None else None
        self._allow_insecure = allow_insecure
        self._curve = curve
        self._operators = operators
        self.verdicts = VerdictStore()  # latest verdict per detection, and who waits
        self._heartbeat_s = heartbeat_s
        self._retention_days = retention_days
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._seq = 0
        self._published: Counter[str] = Counter()
        self._drops: Counter[str] = Counter()
        self._latencies = LatencyTracker(_LATENCY_WINDOW)
        self._commit_ms: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._log_state = LogState()
        self._context: zmq.Context | None = None
        self._pub: zmq.Socket | None = None
        self._auth: CurveServer | None = None
        self._log: DetectionLog | None = None
        self._replay: ReplayServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.unclean_runs: list[UncleanRun] = []  # earlier runs found dead at start

    @classmethod
    def from_config(cls, alerts: AlertsConfig | Mapping[str, Any], *, station: str,
                    **kwargs: Any) -> AlertBus:
        """Build from the ``[alerts]`` config section (keys as in docs/alerts.md). A plain
        table is checked by the config model, which holds every ``[alerts]`` rule; in it,
        an absent ``replay``, ``log`` or ``retention_days`` is off."""
        if not isinstance(alerts, AlertsConfig):
            alerts = build_section(AlertsConfig, {**_OFF, **alerts})
        curve = None
        if alerts.curve_server_secret is not None and alerts.curve_clients is not None:
            curve = CurveConfig(alerts.curve_server_secret, alerts.curve_clients)
        kwargs.setdefault("replay_endpoint", alerts.replay)
        kwargs.setdefault("retention_days", alerts.retention_days)
        kwargs.setdefault("log_path", alerts.log)
        if alerts.operators is not None:
            kwargs.setdefault("operators", Operators.load(alerts.operators))
        return cls(alerts.publish, station=station, allow_insecure=alerts.allow_insecure,
                   curve=curve, **kwargs)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Bind the sockets and start publishing (heartbeats begin at once)."""
        if self._thread is not None or self._closed:
            raise RuntimeError("AlertBus.start() called twice or after close()")
        for ep in (self.endpoint, self.replay_endpoint):
            if ep is not None:
                check_bind_allowed(ep, allow_insecure=self._allow_insecure, curve=self._curve)
        self._context = zmq.Context()
        try:
            if self._curve is not None:
                self._auth = CurveServer(self._context, self._curve)
            self._pub = self._bind(zmq.PUB, self.endpoint)
            self.endpoint = _bound_endpoint(self._pub)
            if self._log_path is not None:
                self._log = DetectionLog(self._log_path)
                self.unclean_runs = self._log.start_run(self.run_id, self.station)
                if self._retention_days is not None:
                    self._log.prune(self._retention_days)
                self.verdicts.load(self._log_path)
            if self.replay_endpoint is not None:
                # the config checks that a replay server has a log to serve
                assert self._log_path is not None and self._log is not None
                reader = LogReader(self._log_path, self._log.backlog)
                try:
                    router = self._bind(zmq.ROUTER, self.replay_endpoint)
                except ConfigError:
                    reader.close()
                    raise
                self.replay_endpoint = _bound_endpoint(router)
                self._replay = ReplayServer(router, reader, VerdictDesk(
                    self.verdicts, find_detection=lambda i: reader.find("detection", i),
                    submit=self.publish_validation, secured=self._curve is not None,
                    local=is_loopback_endpoint(self.replay_endpoint),
                    operators=self._operators))
        except BaseException:
            if self._log is not None:  # this run never began: no death for the next start
                self._log.end_run(StopReason.FAILED)
            self._release()
            raise
        if self._replay is not None:
            self._replay.start()
        for run in self.unclean_runs:
            self._close_left_open(run)
        self._thread = threading.Thread(target=self._run, name="pamlive-alerts", daemon=True)
        self._thread.start()

    def _bind(self, kind: int, endpoint: str) -> zmq.Socket:
        assert self._context is not None  # made by start() just before
        sock = self._context.socket(kind)
        sock.linger = 2000
        sock.sndhwm = 10000  # per subscriber; beyond it PUB drops and clients heal by replay
        sock.maxmsgsize = MAX_FRAME_BYTES
        if self._auth is not None:
            self._auth.secure(sock)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as e:
            sock.close(linger=0)
            raise ConfigError(f"alert bus cannot bind {endpoint}: {e.strerror}") from e
        return sock

    def _close_left_open(self, run: UncleanRun) -> None:
        """Say that an earlier run died, and close each onset it left open with an
        ``incomplete`` detection: the first messages of this run, logged like any."""
        log.warning("the previous run %s ended uncleanly (killed, crashed or power lost: "
                    "no clean stop in the log); closing the %d onset(s) it left open",
                    run.run_id, len(run.open_onsets))
        for onset in run.open_onsets:
            self._enqueue(detection_topic(onset["class"]), closing_detection(onset), None)
        self.publish("alert.monitor.previous_run_lost", {
            "schema": HEALTH_ALERT_SCHEMA, "class": "monitor.previous_run_lost",
            "previous_run_id": run.run_id, "onsets_closed": len(run.open_onsets),
            "reasons": [f"run {run.run_id} ended without a clean stop"]})

    def close(self, stop_reason: str | None = None, *, final: bool = True) -> None:
        """Publish everything queued, then close sockets and the log. Idempotent.

        ``final``: this is the end of the monitor, not a hand-over to a re-executed
        image: a last heartbeat says so (``"final": true``, ``stop_reason``). The log
        records the run's end and ``stop_reason`` either way.
        """
        if self._closed:
            return
        if final and self._thread is not None:
            goodbye = {"schema": HEARTBEAT_SCHEMA, "final": True}
            if stop_reason is not None:
                goodbye["stop_reason"] = stop_reason
            self._enqueue("heartbeat", goodbye, None)
        self._closed = True
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)  # full queue: the thread is awake anyway
        if self._thread is not None:
            self._thread.join()
        if self._log is not None:
            self._log.end_run(stop_reason)
        self._release()

    def _release(self) -> None:
        if self._replay is not None:
            self._replay.stop()
        if self._pub is not None:
            self._pub.close()
        if self._auth is not None:
            self._auth.stop()
        if self._log is not None:
            self._log.close()  # retries held rows
            with self._lock:
                self._log_state = self._log.state()
        if self._context is not None:
            self._context.term()
        # the replay server object is kept: its counters stay readable in stats()
        self._pub = self._auth = self._log = self._context = None

    def __enter__(self) -> AlertBus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producer side (any thread; never blocks) ---------------------------------------

    def _enqueue(self, topic: str, body: dict, ready_monotonic: float | None) -> bool:
        """Queue one message; False (counted as a drop) when closing or full."""
        if self._closing.is_set():
            self._count_drop(topic)
            return False
        try:
            self._queue.put_nowait((topic, body, ready_monotonic))
        except queue.Full:
            self._count_drop(topic)
            return False
        return True

    def _count_drop(self, topic: str) -> None:
        with self._lock:
            self._drops[topic] += 1

    def publish_detection(self, body: dict, *, ready_monotonic: float) -> None:
        """Queue a detection body (from ``schema.detection_body``) for log + publication."""
        if not isinstance(body.get("class"), str) or "start_utc" not in body:
            raise ValueError("publish_detection needs a body from schema.detection_body")
        self._enqueue(detection_topic(body["class"]), dict(body), ready_monotonic)

    def publish_onset(self, body: dict, *, ready_monotonic: float) -> None:
        """Queue an onset body (from ``schema.onset_body``): logged, then published, like a
        detection; ``ready_monotonic``: arrival of the opening window's last sample."""
        if body.get("schema") != ONSET_SCHEMA or not isinstance(body.get("class"), str):
            raise ValueError("publish_onset needs a body from schema.onset_body")
        self._enqueue(onset_topic(body["class"]), dict(body), ready_monotonic)

    def publish_call(self, body: dict, *, ready_monotonic: float) -> None:
        """Queue a call body (from ``schema.call_body``): logged, then published, like a
        detection; ``ready_monotonic``: arrival of the last sample of its window."""
        if body.get("schema") != CALL_SCHEMA or not isinstance(body.get("species"), str):
            raise ValueError("publish_call needs a body from schema.call_body")
        self._enqueue(call_topic(body["species"]), dict(body), ready_monotonic)

    def publish_call_summary(self, body: dict) -> None:
        """Queue a per-minute call summary (from ``schema.call_summary_body``): logged,
        then published (it carries no ``latency_ms``: it waits for its minute to end)."""
        if body.get("schema") != CALL_SUMMARY_SCHEMA:
            raise ValueError("publish_call_summary needs a body from schema.call_summary_body")
        self._enqueue(CALL_SUMMARY_TOPIC, dict(body), None)

    def publish_bearing(self, body: dict) -> None:
        """Queue a detection's bearing (from ``array.worker.bearing_body``, with the
        detection's ``start_utc``): logged, then published, like its detection."""
        if body.get("schema") != BEARING_SCHEMA or "start_utc" not in body:
            raise ValueError("publish_bearing needs a body from array.worker.bearing_body")
        self._enqueue(bearing_topic(body["class"]), dict(body), None)

    def publish_validation(self, body: dict) -> bool:
        """Queue an operator's verdict (from ``validation.validation_body``): logged, then
        published as ``validation.<class>``; False when it could not be queued."""
        if body.get("schema") != VALIDATION_SCHEMA or not isinstance(body.get("class"), str):
            raise ValueError("publish_validation needs a body from validation_body")
        return self._enqueue(validation_topic(body["class"]), dict(body), None)

    def publish_health(self, body: dict) -> None:
        self._enqueue("health", {"schema": HEALTH_SCHEMA, **body}, None)

    def publish(self, topic: str, body: dict) -> None:
        """Any non-alert topic (e.g. ``spectrum``); alerts (detections, onsets, bearings,
        calls, summaries) go through the log."""
        if logged_kind(topic) is not None or not topic.isascii():
            raise ValueError(f"publish: topic {topic!r} must be ASCII and not an alert")
        self._enqueue(topic, dict(body), None)

    def stats(self) -> dict[str, Any]:
        """Counters for the health message and the dashboard."""
        with self._lock:
            latencies = self._latencies.summary()
            commits = np.array(self._commit_ms) if self._commit_ms else None
            stats = {
                "run_id": self.run_id,
                "seq": self._seq,
                "published": dict(self._published),
                "drops": dict(self._drops),
                "dropped": sum(self._drops.values()),
                "queue_fill": self._queue.qsize() / self._queue.maxsize,
                "log_rows": self._log_state.rows,
                "log_errors": self._log_state.unlogged,
                "log": {**asdict(self._log_state), "flags": self._log_state.flags},
                "latency_ms": latencies,
            }
        stats["validation"] = self.verdicts.stats(time.time())
        stats["log_commit_ms"] = (
            {"last": float(commits[-1]), "median": float(np.median(commits)),
             "p95": float(np.percentile(commits, 95))}
            if commits is not None
            else {"last": None, "median": None, "p95": None}
        )
        if self._replay is not None:
            stats["replay"] = {"requests": self._replay.requests, "errors": self._replay.errors}
        return stats

    # -- publisher thread ---------------------------------------------------------------

    def _run(self) -> None:
        next_heartbeat = time.monotonic()
        next_prune = time.monotonic() + _PRUNE_EVERY_S
        while True:
            batch = self._take_batch(timeout=max(0.0, next_heartbeat - time.monotonic()))
            try:
                if batch:
                    self._send_batch(batch)
                now = time.monotonic()
                if now >= next_heartbeat:
                    self._send_batch([("heartbeat", {"schema": HEARTBEAT_SCHEMA}, None)])
                    next_heartbeat = max(next_heartbeat + self._heartbeat_s, now)
                if self._retention_days is not None and self._log and now >= next_prune:
                    self._log.prune(self._retention_days)
                    self.verdicts.forget_before(time.time() - self._retention_days * 86400.0)
                    next_prune = now + _PRUNE_EVERY_S
            except Exception:  # never let one bad message silence the monitor
                log.exception("alert bus publisher error")
                with self._lock:
                    self._drops["error"] += 1
            if self._closing.is_set() and self._queue.empty():
                return

    def _take_batch(self, timeout: float) -> list[tuple[str, dict, float | None]]:
        """Wait for the first message (or the next heartbeat), then take what is queued."""
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < _BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return [item for item in batch if item is not _WAKE]

    def _send_batch(self, batch: list[tuple[str, dict, float | None]]) -> None:
        """Number every message, commit the batch's alerts, then send all in order."""
        now = time.monotonic()
        time_utc = utc_iso(datetime.now(UTC))
        frames: list[tuple[str, bytes]] = []
        rows: list[LoggedDetection] = []
        latencies: list[tuple[str, float]] = []
        judged: list[tuple[str, dict]] = []  # detections and verdicts, for the store
        for topic, body, ready in batch:
            body.update(run_id=self.run_id, seq=self._seq + 1, time_utc=time_utc)
            body["station"] = self.station
            if ready is not None:
                body["latency_ms"] = round((now - ready) * 1000.0, 3)
            try:
                text = json.dumps(body, separators=(",", ":"), allow_nan=False)
                start = (parse_utc(body["start_utc"]).timestamp()
                         if logged_kind(topic) is not None else 0.0)
            except (TypeError, ValueError, KeyError):  # one bad body must not sink the batch
                log.exception("unpublishable %s message dropped", topic)
                self._count_drop(topic)
                continue
            self._seq += 1
            kind = logged_kind(topic)
            if ready is not None:
                latencies.append((kind or DETECTION, body["latency_ms"]))
            if kind is not None and self._log is not None:
                rows.append(LoggedDetection(self._seq, start, text, kind))
            if kind in ("detection", "validation"):
                judged.append((kind, body))
            frames.append((topic, text.encode("utf-8")))
        if rows:
            self._write_log(rows)
        assert self._pub is not None  # this thread runs only between start() and close()
        for topic, payload in frames:
            self._pub.send_multipart([topic.encode("ascii"), payload])
        for kind, body in judged:
            self.verdicts.record(kind, body)
        with self._lock:
            for topic, _ in frames:
                self._published[topic] += 1
            for kind, ms in latencies:
                self._latencies.add(kind, ms)

    def _write_log(self, rows: list[LoggedDetection]) -> None:
        """Log a batch; a failed write (disk full) is held by the log, flagged and alerted."""
        if self._log is None:
            return
        t0 = time.perf_counter()
        written = self._log.append(rows)
        for cls, message in self._log.drain_events():
            log.warning("%s: %s", cls, message)
            self.publish(f"alert.{cls}", {"schema": HEALTH_ALERT_SCHEMA, "class": cls,
                                          "reasons": [message]})
        with self._lock:
            if written:
                self._commit_ms.append((time.perf_counter() - t0) * 1000.0)
            self._log_state = self._log.state()


def _bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint a socket is bound to (the real port when bound to ``*``)."""
    endpoint = sock.last_endpoint
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)
