"""The live array stage: channel agreement before the alert, bearings after it.

The publisher thread calls :meth:`ArrayStage.accepts` (a count comparison) and
:meth:`ArrayStage.submit` (a ``put_nowait``) per closed detection, and never waits: the
bearing is computed on this stage's own thread from the ring (a lock-free ``peek``) and
published as a later ``bearing.<class>`` message (``docs/array.md``). A full queue drops
the job and counts it, as does a detection whose audio the ring has already overwritten.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from pamlive.alerts.schema import BEARING_SCHEMA, utc_iso
from pamlive.array.agreement import ChannelAgreement
from pamlive.array.bearing import BearingEstimator, BearingResult, HeadingAt
from pamlive.config import ArraySettings
from pamlive.detection import Detection, Onset

log = logging.getLogger(__name__)

Fetch = Callable[[int, int], np.ndarray | None]  # [start, end) samples -> (frames, channels)
Publish = Callable[[str, dict[str, Any]], None]  # topic, body
_STOP = object()


def bearing_body(det: Detection, result: BearingResult, *, run_id: str, station: str,
                 start_utc: datetime | None) -> dict[str, Any]:
    """A ``pamlive.bearing/1`` body (the bus adds ``seq``): the detection it belongs to is
    the one of this ``run_id`` with the same ``class`` and ``start_sample``; ``start_utc``
    is the detection's, as its alert said."""
    body: dict[str, Any] = {
        "schema": BEARING_SCHEMA, "run_id": run_id, "station": station,
        "class": det.class_name, "start_sample": int(det.start_sample),
        "end_sample": int(det.end_sample),
    }
    if start_utc is not None:
        body["start_utc"] = utc_iso(start_utc)
    return {**body, "cost_ms": round(result.cost_ms, 2), **result.fields()}


@dataclass
class _Job:
    det: Detection
    utc: datetime | None  # the detection's start (sample clock), for the heading and body


class ArrayStage:
    """Agreement rule + bearing thread for one live run."""

    def __init__(self, settings: ArraySettings, fetch: Fetch,
                 publish: Callable[[Detection, BearingResult, datetime | None], None],
                 heading_at: HeadingAt | None = None) -> None:
        self.estimator = BearingEstimator(settings, heading_at)
        self.agreement = ChannelAgreement(settings.min_channels)
        self._fetch = fetch
        self._publish = publish
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue)
        self._thread = threading.Thread(target=self._run, name="pamlive-bearings", daemon=True)
        self.submitted = 0
        self.dropped = 0  # queue full
        self.missing = 0  # the ring no longer held the detection's audio
        self.failed = 0
        self.done = 0
        self._cost_ms: deque[float] = deque(maxlen=64)
        self._reported_drops = 0

    def accepts(self, event: Detection | Onset) -> bool:
        return self.agreement.accepts(event)

    def start(self) -> None:
        self._thread.start()

    def published(self, det: Detection, body: dict[str, Any], utc: datetime | None) -> None:
        """The live engine's detection hook: ``det`` was just published (its ``body``)."""
        self.submit(det, utc)

    def submit(self, det: Detection, utc: datetime | None) -> bool:
        """Queue ``det`` for a bearing without waiting; False (counted) if the queue is full."""
        self.submitted += 1
        try:
            self._queue.put_nowait(_Job(det, utc))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued bearings (up to ``timeout``), then end the thread."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not _STOP:
            try:
                samples = self._fetch(job.det.start_sample, job.det.end_sample)
                if samples is None or samples.shape[0] < 2:
                    self.missing += 1
                    continue
                utc_s = job.utc.timestamp() if job.utc is not None else None
                result = self.estimator.for_detection(job.det, samples, utc_s)
                self._cost_ms.append(result.cost_ms)
                self._publish(job.det, result, job.utc)
                self.done += 1
            except Exception:
                self.failed += 1
                log.exception("bearing of a %s detection failed", job.det.class_name)

    def health(self) -> dict[str, Any]:
        """The ``array`` object of the health message."""
        costs = list(self._cost_ms)
        return {"bearings": self.done, "queue_fill": round(self._queue.qsize()
                                                           / self._queue.maxsize, 4),
                "dropped": self.dropped, "missing_audio": self.missing, "failed": self.failed,
                "agreement_rejected": dict(self.agreement.rejected),
                "mean_cost_ms": round(float(np.mean(costs)), 2) if costs else None}

    def flags(self) -> list[str]:
        """``bearing_drops`` while new bearings are being lost (queue full, audio gone)."""
        lost = self.dropped + self.missing + self.failed
        new, self._reported_drops = lost > self._reported_drops, lost
        return ["bearing_drops"] if new else []

