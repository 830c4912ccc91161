"""Bus bodies for the merge rule's events: an onset (a detection opening) or a detection.

One place maps both to their messages, so the live engine publishes the two with the
same fields, times and id, whichever module drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from pamlive.alerts.schema import detection_body, onset_body
from pamlive.detection import Detection, Onset


class ModelInfo(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


def alert_body(event: Onset | Detection, *, run_id: str, station: str,
               utc_at: Callable[[int], datetime], model: ModelInfo,
               position: Mapping[str, float] | None = None,
               clip: str | None = None) -> dict[str, Any]:
    """The ``pamlive.onset/1`` or ``pamlive.detection/1`` body (the bus adds ``seq``,
    ``time_utc`` and ``latency_ms``); ``clip`` only for detections."""
    fields: dict[str, Any] = dict(
        run_id=run_id, station=station, class_name=event.class_name, score=event.score,
        scores=event.scores, channels=event.channels, start_sample=event.start_sample,
        end_sample=event.end_sample, sample_rate=event.sample_rate,
        utc_at=utc_at, model_name=model.name,
        model_version=model.version, position=position,
    )
    if isinstance(event, Onset):
        return onset_body(**fields)
    return detection_body(**fields, clip=clip)
