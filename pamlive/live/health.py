"""The ``pamlive.health/1`` body, built by a pure function from counter snapshots.

The engine takes a :class:`Snapshot` of every stage's counters; :func:`health_body`
turns it (and the snapshot of the previous health message, for "new since then" flags
and the level meter's change) into the message. Calling it twice gives the same answer.

Extending health is adding a :class:`Part` to the snapshot: a name (a top-level key of
the body, e.g. ``clips``), its stats, and its flags (shown; with ``degrades`` they also
make the status at least ``degraded``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEAF_AFTER_S = 2.0  # no audio for this long while running: status "deaf"
SEVERITY = ("ok", "degraded", "deaf")

# flag name -> the snapshot counter whose growth since the last health raises it
_GROWTH_FLAGS = (
    ("input_overflow", "overflows"), ("ring_overrun", "ring_lost"),
    ("window_drops", "window_drops"), ("score_drops", "score_drops"),
    ("publish_drops", "publish_drops"), ("inference_errors", "inference_errors"),
    ("callback_errors", "callback_errors"),
)


@dataclass(frozen=True)
class Part:
    """One component's health section (``stats`` under ``name``) and its flags."""

    name: str
    stats: Mapping[str, Any]
    flags: tuple[str, ...] = ()
    degrades: bool = False  # its flags make the status "degraded" (never "deaf")


@dataclass(frozen=True)
class Snapshot:
    """Every counter the health message needs, read at ``now`` (``time.monotonic``)."""

    now: float
    started: float
    running: bool  # the input has not ended
    last_audio_at: float | None  # monotonic arrival of the newest block
    sample_rate: int
    channels: int
    written: int  # samples the source delivered (the sample clock)
    capture: Mapping[str, int]  # callbacks, frames, overflows, status_flags
    callback_errors: int
    ring_capacity: int
    ring_fill: float
    ring_lost: int
    windows: int
    window_drops: int
    window_queue_fill: float
    batches: int
    mean_batch_ms: float | None
    inference_errors: int
    score_drops: int
    publish_drops: int
    latency_ms: Mapping[str, float | None]
    level_sumsq: tuple[float, ...]
    level_count: int
    failed: bool  # a processing stage died
    source_failed: bool
    watchdog_status: str
    watchdog_flags: tuple[str, ...]
    parts: tuple[Part, ...] = field(default=())

    @property
    def overflows(self) -> int:
        return int(self.capture.get("overflows", 0))


def health_body(now: Snapshot, before: Snapshot | None) -> dict[str, Any]:
    """The health body (the bus adds schema, run_id, seq, time_utc, station)."""
    flags = [name for name, key in _GROWTH_FLAGS
             if getattr(now, key) > (getattr(before, key) if before else 0)]
    last_audio = now.last_audio_at if now.last_audio_at is not None else now.started
    if now.running and now.now - max(last_audio, now.started) > DEAF_AFTER_S:
        flags.append("no_audio")
    if now.failed:
        flags.append("pipeline_stopped")
    if now.source_failed:
        flags.append("source_failed")
    flags += [f for part in now.parts if part.degrades for f in part.flags]
    deaf = {"no_audio", "pipeline_stopped", "source_failed"} & set(flags)
    status = "deaf" if deaf else ("degraded" if flags else "ok")
    status = max(status, now.watchdog_status, key=SEVERITY.index)
    flags = list(now.watchdog_flags) + flags
    flags += [f for part in now.parts if not part.degrades for f in part.flags]
    rate = now.sample_rate
    body: dict[str, Any] = {
        "uptime_s": round(now.now - now.started, 3),
        "status": status,
        "flags": flags,
        "sample_rate": rate,
        "channels": now.channels,
        "stream_time_s": round(now.written / rate, 3),
        "capture": dict(now.capture),
        "ring": {"capacity_s": round(now.ring_capacity / rate, 3),
                 "fill": round(now.ring_fill, 4), "overwritten_samples": now.ring_lost},
        "inference": {"windows": now.windows, "batches": now.batches,
                      "queue_fill": round(now.window_queue_fill, 4),
                      "mean_batch_ms": (None if now.mean_batch_ms is None
                                        else round(now.mean_batch_ms, 3))},
        "latency_ms": dict(now.latency_ms),  # percentiles over recent alerts (the bus's)
        "drops": {"ring_samples": now.ring_lost, "window_queue": now.window_drops,
                  "detection_queue": now.score_drops, "publish": now.publish_drops},
        "level_dbfs": _levels(now, before),
    }
    for part in now.parts:
        body[part.name] = dict(part.stats)
    return body


def _levels(now: Snapshot, before: Snapshot | None) -> list[float | None]:
    """RMS level per channel over the samples since ``before``, in dBFS (None: no samples)."""
    n = now.level_count - (before.level_count if before else 0)
    if n <= 0:
        return [None] * now.channels
    delta = np.asarray(now.level_sumsq) - (np.asarray(before.level_sumsq) if before else 0.0)
    rms = np.sqrt(np.maximum(delta, 0.0) / n)
    return [round(float(20 * np.log10(max(r, 1e-10))), 1) for r in rms]
