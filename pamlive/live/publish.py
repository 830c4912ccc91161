"""Merge + publish stage: scored windows -> merger events -> alert bus, clips, hooks.

It runs on the engine's thread. A :class:`Merge` (one model's :class:`WindowMerge`, an
ensemble's alignment and fusion: ``pamlive/kinds/ensemble.py``) turns what the inference
thread queued into events; each kind
of event has a handler in :attr:`Publisher.handlers`: an :class:`Onset` (a detection
opening: the early alert, published at once) and a closed :class:`Detection` (bearings
follow later from a hook, ``pamlive/array``). A detection is published at once
with its UTC from the sample clock, its position and the name of its clip; the clip is
cut from the ring once its post-roll has arrived and written on the clip thread
(``live/wiring.py``), so nothing slow stands between a window and its alert.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

import numpy as np

from pamlive.alerts.bodies import ModelInfo, alert_body
from pamlive.alerts.bus import AlertBus
from pamlive.buffers import RingBuffer
from pamlive.detection import Detection, Onset, WindowMerger
from pamlive.field.position import PositionTrack
from pamlive.live.windowing import END
from pamlive.live.wiring import Evidence
from pamlive.windows import Window

log = logging.getLogger(__name__)


class DetectionHook(Protocol):
    """Something that follows published detections (e.g. a bearing worker whose result
    comes later as its own message). ``accepts`` may veto a detection before it is sent."""

    def accepts(self, event: Detection | Onset) -> bool: ...

    def published(self, detection: Detection, body: dict[str, Any], utc: datetime) -> None: ...


def drain_queue(items: queue.Queue[object], timeout: float,
                handle: Callable[[object], None]) -> bool:
    """Hand every item queued within ``timeout`` seconds to ``handle``; True once the
    end-of-stream marker came through (then nothing follows it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            item = items.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if item is END:
            return True
        handle(item)


class Merge(Protocol):
    """Queued inference results in, merger events out (the engine's thread)."""

    def push(self, item: object) -> tuple[Sequence[object], int]:
        """Events and the end (exclusive, input index) of the window that made them."""
        ...

    def flush(self, end_sample: int) -> Sequence[object]: ...


class WindowMerge:
    """One model's merge: ``(window, scores)`` items through PAMGuard's rule."""

    def __init__(self, merger: WindowMerger) -> None:
        self.merger = merger

    def push(self, item: object) -> tuple[Sequence[object], int]:
        w, scores = cast(tuple[Window, np.ndarray], item)
        return self.merger.push_events(w.index, w.start_sample, w.end_sample, scores), \
            w.end_sample

    def flush(self, end_sample: int) -> Sequence[object]:
        return self.merger.flush(end_sample)


class Publisher:
    """Drains the score queue through the merge and publishes what it emits."""

    def __init__(self, merger: Merge, scores: queue.Queue[object], bus: AlertBus, *,
                 package: ModelInfo, station: str, utc: Callable[[int], datetime],
                 ring: RingBuffer, evidence: Evidence | None, track: PositionTrack | None,
                 hooks: Sequence[DetectionHook] = (),
                 on_detection: Callable[[Detection], None] | None = None) -> None:
        self.merger = merger
        self.scores = scores
        self.bus = bus
        self.package = package
        self.station = station
        self.utc = utc
        self.ring = ring
        self.evidence = evidence
        self.track = track
        self.hooks = list(hooks)
        self.on_detection = on_detection
        self.detections = 0
        self.ended = False  # the end-of-stream marker came through the score queue
        # event type -> handler(event, ready_monotonic); the merger's events go here
        self.handlers: dict[type, Callable[[Any, float], None]] = {
            Onset: self.publish_onset,
            Detection: self.publish_detection,
        }

    def drain(self, timeout: float) -> None:
        """Merge what the inference thread scored within ``timeout`` seconds."""
        self.ended = self.ended or drain_queue(self.scores, timeout, self._merge)

    def _merge(self, item: object) -> None:
        self.emit(*self.merger.push(item))

    def flush(self, end_sample: int) -> None:
        """End of stream: close and publish what is still open."""
        self.emit(self.merger.flush(end_sample), end_sample)

    def emit(self, events: Sequence[object], last_sample: int) -> None:
        """Publish each event; ``last_sample`` ends (exclusive) the window that triggered
        them: their ``latency_ms`` runs from that sample's arrival."""
        if not events:
            return
        arrival = self.ring.arrival_time(last_sample - 1)
        ready = time.monotonic() if arrival is None else arrival
        for event in events:
            self.handlers[type(event)](event, ready)

    def _position(self, utc: datetime) -> dict[str, float] | None:
        position = self.track.at(utc.timestamp()) if self.track else None
        return position.as_dict() if position else None

    def publish_onset(self, onset: Onset, ready: float) -> None:
        """The early alert: a detection has opened (logged, then sent, at once)."""
        if not all(hook.accepts(onset) for hook in self.hooks):
            return
        utc = self.utc(onset.start_sample)
        body = alert_body(onset, run_id=self.bus.run_id, station=self.station, utc_at=self.utc,
                          model=self.package, position=self._position(utc))
        self.bus.publish_onset(body, ready_monotonic=ready)
        log.info("onset %s score %.2f at %s", onset.class_name, onset.score, body["start_utc"])

    def publish_detection(self, det: Detection, ready: float) -> None:
        if not all(hook.accepts(det) for hook in self.hooks):
            return
        self.detections += 1
        det_utc = self.utc(det.start_sample)
        clip = self.evidence.plan(det, det_utc) if self.evidence else None
        body = alert_body(det, run_id=self.bus.run_id, station=self.station, utc_at=self.utc,
                          model=self.package, position=self._position(det_utc), clip=clip)
        self.bus.publish_detection(body, ready_monotonic=ready)
        for hook in self.hooks:
            hook.published(det, body, det_utc)
        log.info("detection %s score %.2f at %s (channels %s)", det.class_name, det.score,
                 body["start_utc"], ",".join(map(str, det.channels)))
        if self.on_detection is not None:
            self.on_detection(det)
