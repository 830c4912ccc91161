"""Event models (bats) live: windows -> network -> calls -> de-duplicated -> bus.

A package whose ``output`` says ``events`` emits calls, not window scores, so the merge
rule is not applied. The stages stay those of the window scores (``windowing.py`` cuts
the windows, ``scoring.py`` runs the batches on its thread) with two pieces swapped:

* :class:`CallFinder` runs on the inference thread: one ONNX batch per window (its
  channels that pass the activity gate, ``pamlive/calls/gate.py``), the heatmaps decoded
  into calls, calls found twice in overlapping windows
  de-duplicated (``pamlive.calls``, the code ``pamlive analyze`` runs on the same
  windows), so the queue to the engine's thread carries finished calls only;
* :class:`CallPublisher`, on the engine's thread, only turns calls into bus bodies (UTC
  from the sample clock) and counts them per species and UTC minute
  (``summary.calls``): nothing slow there.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.schema import call_body, call_summary_body
from pamlive.buffers import RingBuffer
from pamlive.calls.call import Call
from pamlive.calls.dedup import CallDeduplicator
from pamlive.calls.gate import ActivityGate
from pamlive.calls.stream import window_calls
from pamlive.inference.heatmaps import EventModel
from pamlive.inference.package import ModelPackage
from pamlive.live.health import Part
from pamlive.live.publish import drain_queue
from pamlive.windows import Window

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class FoundCalls:
    """What one window settled: the calls no later window can find again.

    ``end_sample``: the window's end (exclusive, input index; latency runs from the
    arrival of its last sample); ``settled_sample``: every call starting before this
    input index has now been released (the per-minute counts may close up to it).
    """

    end_sample: int
    settled_sample: int
    calls: list[Call]


class CallFinder:
    """Windows -> released calls, on the inference thread (the ``find_calls`` of
    :class:`~pamlive.live.scoring.Inference`); :meth:`flush` once that thread ended.

    The calls ``pamlive analyze`` finds (:class:`~pamlive.calls.stream.EventDetector`):
    the same :func:`~pamlive.calls.stream.window_calls` on the same windows, the same
    de-duplication across overlapping windows, the same activity gate (``gate``: its
    counts are read by the engine's thread for health).
    """

    def __init__(self, model: EventModel, input_rate: int, hop_s: float,
                 threshold: float | None = None, gate: ActivityGate | None = None) -> None:
        self.model = model
        self.input_rate = input_rate
        self.threshold = threshold
        self.gate = gate or ActivityGate()
        self.dedup = CallDeduplicator(hop_s)

    def find(self, windows: list[Window]) -> list[FoundCalls]:
        """One network batch per window (its channels): a backlog of windows is not one
        batch, whose activations (about 110 MB per channel-window) could exhaust memory."""
        rate = self.input_rate
        found = []
        for w in windows:
            [calls] = window_calls(self.model, [w], rate, threshold=self.threshold,
                                   gate=self.gate)
            # a later window starts after this one: no call starting before it comes again
            found.append(FoundCalls(w.end_sample, w.start_sample,
                                    self.dedup.push(calls, w.start_sample / rate,
                                                    w.end_sample / rate)))
        return found

    def flush(self) -> list[Call]:
        """End of stream: the calls the de-duplicator still holds."""
        return self.dedup.flush()


@dataclass
class MinuteCounts:
    """Calls per species in each UTC minute, closed once the stream has settled past it.

    The first and last minutes are cut to the stream (``partial``); a minute without
    calls is still reported (the monitor listened and heard none).
    """

    start: datetime  # UTC of the stream's first sample
    _minute: datetime = field(init=False)
    _counts: dict[str, int] = field(init=False, default_factory=dict)
    _max: dict[str, float] = field(init=False, default_factory=dict)
    _early: list[tuple[datetime, str, float]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._minute = self.start.replace(second=0, microsecond=0)

    def add(self, utc: datetime, species: str, prob: float) -> None:
        """Count a call starting at ``utc`` (one of a minute already closed, which the
        release rule rules out for calls shorter than the hop, counts in the open one)."""
        if utc >= self._minute + MINUTE:  # released before its minute closed: hold it
            self._early.append((utc, species, prob))
            return
        self._counts[species] = self._counts.get(species, 0) + 1
        self._max[species] = max(self._max.get(species, 0.0), prob)

    def close_before(self, utc: datetime) -> list[tuple[datetime, datetime, dict[str, int],
                                                       dict[str, float], bool]]:
        """The minutes that ended at or before ``utc``: ``(start, end, counts, max_prob,
        partial)`` each."""
        closed = []
        while self._minute + MINUTE <= utc:
            closed.append(self._close(self._minute + MINUTE))
        return closed

    def flush(self, end: datetime) -> list[tuple[datetime, datetime, dict[str, int],
                                                 dict[str, float], bool]]:
        """End of stream at ``end``: every minute still open, the last one cut to it."""
        closed = self.close_before(end)
        if end > max(self._minute, self.start) or self._counts:
            closed.append(self._close(max(end, self._minute)))
        return closed

    def _close(self, end: datetime) -> tuple[datetime, datetime, dict[str, int],
                                             dict[str, float], bool]:
        start = max(self._minute, self.start)
        partial = start != self._minute or end != self._minute + MINUTE
        out = (start, end, self._counts, self._max, partial)
        self._minute += MINUTE
        self._counts, self._max = {}, {}
        early, self._early = self._early, []
        for item in early:
            self.add(*item)
        return out


class CallPublisher:
    """The engine thread's end of the event path: released calls -> bus, minute counts.

    The same face as :class:`~pamlive.live.publish.Publisher` to the engine (``drain``,
    ``flush``, ``ended``, ``detections``).
    """

    def __init__(self, found: queue.Queue[object], finder: CallFinder, bus: AlertBus, *,
                 package: ModelPackage, station: str, utc: Callable[[int], datetime],
                 ring: RingBuffer, input_rate: int) -> None:
        self.found = found
        self.finder = finder
        self.bus = bus
        self.package = package
        self.station = station
        self.utc = utc
        self.ring = ring
        self.input_rate = input_rate
        self.detections = 0  # calls published (the engine's and the stop line's count)
        self.summaries = 0
        self.per_species: dict[str, int] = {}
        self.ended = False
        self._minutes: MinuteCounts | None = None

    def drain(self, timeout: float) -> None:
        """Publish what the inference thread released within ``timeout`` seconds."""
        self.ended = self.ended or drain_queue(self.found, timeout, self._take)

    def _take(self, item: object) -> None:
        found = cast(FoundCalls, item)
        self._publish(found.calls, found.end_sample)
        self._summaries(self._counts().close_before(self.utc(found.settled_sample)))

    def flush(self, end_sample: int) -> None:
        """End of stream (the inference thread has ended): the held calls, every open
        minute."""
        self._publish(self.finder.flush(), end_sample)
        if end_sample > 0:
            minutes = self._counts()
            self._summaries(minutes.flush(self.utc(end_sample)))

    def part(self) -> Part:
        """The health section ``calls``: published calls per species, summaries sent, and
        the channel-windows the network ran on and the activity gate skipped, and the
        network's arithmetic."""
        gate = self.finder.gate
        return Part("calls", {"published": self.detections, "summaries": self.summaries,
                              "species": dict(self.per_species),
                              "channel_windows": gate.counts(), "activity_gate": gate.level,
                              "precision": self.finder.model.precision})

    def _counts(self) -> MinuteCounts:
        if self._minutes is None:
            self._minutes = MinuteCounts(self.utc(0))
        return self._minutes

    def _publish(self, calls: list[Call], end_sample: int) -> None:
        if not calls:
            return
        arrival = self.ring.arrival_time(end_sample - 1)
        ready = time.monotonic() if arrival is None else arrival
        minutes = self._counts()
        for call in calls:
            start = round(call.start_s * self.input_rate)
            body = call_body(
                run_id=self.bus.run_id, station=self.station, channel=call.channel,
                species=call.species, class_prob=call.class_prob, det_prob=call.det_prob,
                probs=call.probs, start_sample=start,
                end_sample=max(start, round(call.end_s * self.input_rate)),
                sample_rate=self.input_rate, low_hz=call.low_hz, high_hz=call.high_hz,
                utc_at=self.utc, model_name=self.package.name,
                model_version=self.package.version)
            self.bus.publish_call(body, ready_monotonic=ready)
            self.detections += 1
            self.per_species[call.species] = self.per_species.get(call.species, 0) + 1
            minutes.add(self.utc(start), call.species, call.class_prob)

    def _summaries(self, closed: list[tuple[datetime, datetime, dict[str, int],
                                            dict[str, float], bool]]) -> None:
        for start, end, counts, max_prob, partial in closed:
            self.bus.publish_call_summary(call_summary_body(
                run_id=self.bus.run_id, station=self.station, start=start, end=end,
                counts=counts, max_prob=max_prob, partial=partial,
                model_name=self.package.name, model_version=self.package.version))
            self.summaries += 1
            log.info("calls %s..%s: %s", start.strftime("%H:%M:%S"), end.strftime("%H:%M:%S"),
                     ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
