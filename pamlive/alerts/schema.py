"""Alert bus message bodies (docs/contracts.md §2): pure functions, no sockets.

Kept apart from the bus so the monitor, the client, the dashboard and the bridges all
build and check messages with one definition of the schema.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pamlive.clock import utc_at_sample
from pamlive.utc import parse_utc, utc_iso

DETECTION_SCHEMA = "pamlive.detection/1"
HEARTBEAT_SCHEMA = "pamlive.heartbeat/1"
HEALTH_SCHEMA = "pamlive.health/1"
DETECTION_TOPIC_PREFIX = "detection."
ONSET_SCHEMA = "pamlive.onset/1"
ONSET_TOPIC_PREFIX = "onset."
BEARING_SCHEMA = "pamlive.bearing/1"  # a detection's bearing, published after it (array)
BEARING_TOPIC_PREFIX = "bearing."


def new_run_id() -> str:
    """A run id unique per process start; the UTC prefix makes runs sort by start time."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


def detection_topic(class_name: str) -> str:
    return DETECTION_TOPIC_PREFIX + class_name


def onset_topic(class_name: str) -> str:
    return ONSET_TOPIC_PREFIX + class_name


def alert_id(run_id: str, class_name: str, start_sample: int) -> str:
    """The id an onset and its closed detection share: a class's detection starting at a
    sample is unique within a run, and run ids are unique."""
    return f"{run_id}:{class_name}:{int(start_sample)}"


def detection_body(
    *,
    run_id: str,
    station: str,
    class_name: str,
    score: float,
    scores: Mapping[str, float],
    channels: list[int],
    start_sample: int,
    end_sample: int,
    sample_rate: int,
    stream_start_utc: datetime | None = None,
    utc_at: Callable[[int], datetime] | None = None,
    model_name: str,
    model_version: str,
    bearing_deg: float | None = None,
    position: Mapping[str, float] | None = None,
    clip: str | None = None,
) -> dict[str, Any]:
    """A ``pamlive.detection/1`` body without ``seq``/``latency_ms`` (the bus adds them).

    Times come from the sample clock: ``utc_at(sample)`` (a :class:`~pamlive.clock.SampleClock`
    re-anchored after overflows and slewed for drift), or on a nominal clock
    ``stream_start_utc + sample / sample_rate``. Its ``id`` is the one its onset carried.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if end_sample < start_sample:
        raise ValueError(f"end_sample {end_sample} is before start_sample {start_sample}")
    if utc_at is not None:
        start_utc, end_utc = utc_at(start_sample), utc_at(end_sample)
    elif stream_start_utc is not None:
        start_utc = utc_at_sample(stream_start_utc, start_sample, sample_rate)
        end_utc = utc_at_sample(stream_start_utc, end_sample, sample_rate)
    else:
        raise ValueError("detection_body needs utc_at or stream_start_utc")
    body: dict[str, Any] = {
        "schema": DETECTION_SCHEMA,
        "run_id": run_id,
        "station": station,
        "class": class_name,
        "score": float(score),
        "scores": {str(k): float(v) for k, v in scores.items()},
        "channels": [int(c) for c in channels],
        "start_utc": utc_iso(start_utc),
        "end_utc": utc_iso(end_utc),
        "start_sample": int(start_sample),
        "end_sample": int(end_sample),
        "sample_rate": int(sample_rate),
        "model": {"name": model_name, "version": model_version},
        "id": alert_id(run_id, class_name, start_sample),
    }
    if bearing_deg is not None:
        body["bearing_deg"] = float(bearing_deg)
    if position is not None:
        body["position"] = {**position, "lat": float(position["lat"]),
                            "lon": float(position["lon"])}
    if clip is not None:
        body["clip"] = str(clip)
    return body


def onset_body(**fields: Any) -> dict[str, Any]:
    """A ``pamlive.onset/1`` body: the detection as its first window opened it (that
    window's ``end_sample``, score and channels), with the id its closed detection will
    carry. Keywords as for :func:`detection_body`."""
    body = detection_body(**fields)
    body["schema"] = ONSET_SCHEMA
    return body


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _require(cond: bool, field: str, why: str) -> None:
    if not cond:
        raise ValueError(f"detection field {field!r}: {why}")


def validate_envelope(body: object) -> None:
    """Check the fields every bus message carries (``run_id``, ``seq``)."""
    if not isinstance(body, dict):
        raise ValueError(f"message body is a {type(body).__name__}, not a JSON object")
    if not isinstance(body.get("run_id"), str) or not body["run_id"]:
        raise ValueError("message field 'run_id': missing or not a non-empty string")
    if not _is_int(body.get("seq")) or body["seq"] < 1:
        raise ValueError("message field 'seq': missing or not a positive integer")


def validate_detection(body: object) -> None:
    """Raise ``ValueError`` naming the first bad field of a published detection body."""
    _validate_alert(body, DETECTION_SCHEMA)


def validate_onset(body: object) -> None:
    """Raise ``ValueError`` naming the first bad field of a published onset body."""
    _validate_alert(body, ONSET_SCHEMA)
    assert isinstance(body, dict)
    _require("id" in body, "id", "an onset must carry the id of its detection")


def _validate_alert(body: object, schema: str) -> None:
    validate_envelope(body)
    assert isinstance(body, dict)
    _require(body.get("schema") == schema, "schema", f"must be {schema!r}")
    if "id" in body:
        _require(isinstance(body["id"], str) and body["id"] != "", "id", "not a non-empty string")
    _require(isinstance(body.get("station"), str), "station", "missing or not a string")
    _require(isinstance(body.get("class"), str) and body["class"] != "", "class", "missing")
    _require(_is_number(body.get("score")), "score", "missing or not a finite number")
    scores = body.get("scores")
    _require(
        isinstance(scores, dict) and all(_is_number(v) for v in scores.values()),
        "scores",
        "must map class names to finite numbers",
    )
    channels = body.get("channels")
    _require(
        isinstance(channels, list) and all(_is_int(c) and c >= 0 for c in channels),
        "channels",
        "must be a list of non-negative integers",
    )
    for field in ("start_utc", "end_utc"):
        try:
            parse_utc(body.get(field))  # type: ignore[arg-type]
        except ValueError as e:
            raise ValueError(f"detection field {field!r}: {e}") from None
    for field in ("start_sample", "end_sample"):
        _require(_is_int(body.get(field)) and body[field] >= 0, field, "not a sample index")
    _require(body["end_sample"] >= body["start_sample"], "end_sample", "before start_sample")
    _require(_is_int(body.get("sample_rate")) and body["sample_rate"] > 0, "sample_rate", "bad")
    model = body.get("model")
    _require(
        isinstance(model, dict)
        and isinstance(model.get("name"), str)
        and isinstance(model.get("version"), str),
        "model",
        "must be an object with string 'name' and 'version'",
    )
    _require(_is_number(body.get("latency_ms")), "latency_ms", "missing or not a number")
    validate_bearing_fields(body)
    if "position" in body:
        pos = body["position"]
        _require(
            isinstance(pos, dict) and _is_number(pos.get("lat")) and _is_number(pos.get("lon")),
            "position",
            "must be an object with numeric 'lat' and 'lon'",
        )
    if "clip" in body:
        _require(isinstance(body["clip"], str), "clip", "not a string path")


def validate_bearing_fields(body: dict) -> None:
    """The optional array fields (``docs/array.md``) of a detection or bearing body."""
    for name in ("bearing_deg", "bearing_uncertainty_deg", "relative_bearing_deg", "cone_deg",
                 "elevation_deg"):
        if name in body:
            _require(_is_number(body[name]), name, "not a finite number")
    if "ambiguous" in body:
        _require(isinstance(body["ambiguous"], bool), "ambiguous", "not true/false")
    if "bearing_candidates_deg" in body:
        c = body["bearing_candidates_deg"]
        _require(isinstance(c, list) and len(c) == 2 and all(_is_number(v) for v in c),
                 "bearing_candidates_deg", "must be a list of two bearings")
    if "bearing_reference" in body:
        _require(body["bearing_reference"] in ("true", "array"), "bearing_reference",
                 "must be 'true' or 'array'")
