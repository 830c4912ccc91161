"""``--validated-only``: a sink that forwards a detection only once an operator confirmed it.

Why: a bridge to ships (or a mailing list) may want only what a person has checked. The
verdict carries the detection as it was published, so the filter needs no memory of
detections: a ``confirmed`` verdict goes on as that detection (topic ``detection.<class>``)
with the verdict under ``validation``; onsets, detections, bearings and other verdicts
are passed over (their positions are still saved: they were dealt with). A detection
confirmed again (an operator changing their mind and back) is forwarded once per run of
the sink.
"""

from __future__ import annotations

from collections import OrderedDict

from pamlive.alerts.client import BusEvent
from pamlive.alerts.schema import detection_topic
from pamlive.sinks.base import Sink

_REMEMBERED = 10_000  # detection ids already forwarded


class ValidatedOnly:
    """Wraps a sink; see the module's docstring."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._forwarded: OrderedDict[str, None] = OrderedDict()

    def alert(self, event: BusEvent) -> None:
        body = event.body or {}
        detection = body.get("detection")
        if (event.alert != "validation" or body.get("verdict") != "confirmed"
                or not isinstance(detection, dict) or body["detection_id"] in self._forwarded):
            return
        verdict = {k: body.get(k) for k in ("verdict", "validated_class", "operator",
                                            "validated_utc", "note", "verdict_id")}
        self._sink.alert(BusEvent(event.kind, detection_topic(str(detection.get("class"))),
                                  {**detection, "validation": verdict}))
        self._forwarded[body["detection_id"]] = None
        while len(self._forwarded) > _REMEMBERED:
            self._forwarded.popitem(last=False)

    def notice(self, event: BusEvent) -> None:
        self._sink.notice(event)

    def close(self) -> None:
        self._sink.close()
