"""Alert bus message bodies (docs/contracts.md §2): pure functions, no sockets.

Kept apart from the bus so the monitor, the client, the dashboard and the bridges all
build and check messages with one definition of the schema.
"""

from __future__ import annotations

import math
import re
import unicodedata
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
CALL_SCHEMA = "pamlive.call/1"  # one call of an event model (bats), docs/contracts.md
CALL_TOPIC_PREFIX = "call."
CALL_SUMMARY_SCHEMA = "pamlive.call_summary/1"  # calls per species in one UTC minute
CALL_SUMMARY_TOPIC = "summary.calls"
VALIDATION_SCHEMA = "pamlive.validation/1"  # an operator's verdict on a detection
VALIDATION_TOPIC_PREFIX = "validation."


def new_run_id() -> str:
    """A run id unique per process start; the UTC prefix makes runs sort by start time."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


def detection_topic(class_name: str) -> str:
    return DETECTION_TOPIC_PREFIX + class_name


def onset_topic(class_name: str) -> str:
    return ONSET_TOPIC_PREFIX + class_name


def bearing_topic(class_name: str) -> str:
    return BEARING_TOPIC_PREFIX + class_name


def logged_kind(topic: str) -> str | None:
    """The log's kind (``alerts.log.TABLES``) of a message on ``topic``; None: not logged."""
    if topic.startswith(DETECTION_TOPIC_PREFIX):
        return "detection"
    if topic.startswith(ONSET_TOPIC_PREFIX):
        return "onset"
    if topic.startswith(BEARING_TOPIC_PREFIX):
        return "bearing"
    if topic.startswith(CALL_TOPIC_PREFIX):
        return "call"
    if topic.startswith(VALIDATION_TOPIC_PREFIX):
        return "validation"
    return "call_summary" if topic == CALL_SUMMARY_TOPIC else None


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


def validate_bearing(body: object) -> None:
    """Raise ``ValueError`` naming the first bad field of a ``pamlive.bearing/1`` body."""
    validate_envelope(body)
    assert isinstance(body, dict)
    if body.get("schema") != BEARING_SCHEMA:
        raise ValueError(f"bearing field 'schema': must be {BEARING_SCHEMA!r}")
    if not isinstance(body.get("class"), str) or not body["class"]:
        raise ValueError("bearing field 'class': missing")
    if not _is_int(body.get("start_sample")) or body["start_sample"] < 0:
        raise ValueError("bearing field 'start_sample': not a sample index")
    validate_bearing_fields(body)


# -- calls of an event model (bats) ------------------------------------------------------


def species_slug(species: str) -> str:
    """The ASCII topic word for a species: ``Pipistrellus pygmaeus`` -> ``pipistrellus_pygmaeus``
    (accents dropped, anything but letters and digits one ``_``)."""
    ascii_name = unicodedata.normalize("NFKD", species).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_") or "unknown"


def call_topic(species: str) -> str:
    return CALL_TOPIC_PREFIX + species_slug(species)


def call_id(run_id: str, channel: int, start_sample: int, low_hz: float) -> str:
    """Unique within a run: one call per channel starts at a sample in one frequency row."""
    return f"{run_id}:call:{int(channel)}:{int(start_sample)}:{round(low_hz)}"


def call_body(*, run_id: str, station: str, channel: int, species: str, class_prob: float,
              det_prob: float, probs: Mapping[str, float], start_sample: int,
              end_sample: int, sample_rate: int, low_hz: float, high_hz: float,
              utc_at: Callable[[int], datetime], model_name: str,
              model_version: str) -> dict[str, Any]:
    """A ``pamlive.call/1`` body without ``seq``/``latency_ms`` (the bus adds them); UTC
    from the sample clock at the call's first and last input samples."""
    if end_sample < start_sample:
        raise ValueError(f"end_sample {end_sample} is before start_sample {start_sample}")
    return {
        "schema": CALL_SCHEMA,
        "run_id": run_id,
        "station": station,
        "id": call_id(run_id, channel, start_sample, low_hz),
        "model": {"name": model_name, "version": model_version},
        "channel": int(channel),
        "species": str(species),
        "class_prob": float(class_prob),
        "det_prob": float(det_prob),
        "probs": {str(k): float(v) for k, v in probs.items()},
        "start_utc": utc_iso(utc_at(start_sample)),
        "end_utc": utc_iso(utc_at(end_sample)),
        "start_sample": int(start_sample),
        "end_sample": int(end_sample),
        "sample_rate": int(sample_rate),
        "low_hz": float(low_hz),
        "high_hz": float(high_hz),
    }


def call_summary_body(*, run_id: str, station: str, start: datetime, end: datetime,
                      counts: Mapping[str, int], max_prob: Mapping[str, float],
                      partial: bool, model_name: str, model_version: str) -> dict[str, Any]:
    """A ``pamlive.call_summary/1`` body: the calls that started in ``[start, end)`` (one
    UTC minute; shorter, with ``partial``, where the stream began or ended in it)."""
    start_utc = utc_iso(start)
    return {
        "schema": CALL_SUMMARY_SCHEMA,
        "run_id": run_id,
        "station": station,
        "id": f"{run_id}:summary:{start_utc}",
        "model": {"name": model_name, "version": model_version},
        "start_utc": start_utc,
        "end_utc": utc_iso(end),
        "partial": bool(partial),
        "calls": int(sum(counts.values())),
        "counts": {str(k): int(v) for k, v in counts.items()},
        "max_prob": {str(k): float(v) for k, v in max_prob.items()},
    }


def _check(cond: bool, what: str, field: str, why: str) -> None:
    if not cond:
        raise ValueError(f"{what} field {field!r}: {why}")


def _check_common(body: object, schema: str, what: str) -> dict:
    """Envelope, schema, id, station, model and the two UTC times of a call or summary."""
    validate_envelope(body)
    assert isinstance(body, dict)
    _check(body.get("schema") == schema, what, "schema", f"must be {schema!r}")
    _check(isinstance(body.get("id"), str) and body["id"] != "", what, "id",
           "missing or not a non-empty string")
    _check(isinstance(body.get("station"), str), what, "station", "missing or not a string")
    model = body.get("model")
    _check(isinstance(model, dict) and isinstance(model.get("name"), str)
           and isinstance(model.get("version"), str), what, "model",
           "must be an object with string 'name' and 'version'")
    times = []
    for field in ("start_utc", "end_utc"):
        try:
            times.append(parse_utc(body.get(field)))  # type: ignore[arg-type]
        except ValueError as e:
            raise ValueError(f"{what} field {field!r}: {e}") from None
    _check(times[1] >= times[0], what, "end_utc", "before start_utc")
    return body


def validate_call(body: object) -> None:
    """Raise ``ValueError`` naming the first bad field of a published call body."""
    b = _check_common(body, CALL_SCHEMA, "call")
    _check(isinstance(b.get("species"), str) and b["species"] != "", "call", "species",
           "missing or not a non-empty string")
    _check(_is_int(b.get("channel")) and b["channel"] >= 0, "call", "channel",
           "not a non-negative integer")
    for field in ("class_prob", "det_prob", "low_hz", "high_hz", "latency_ms"):
        _check(_is_number(b.get(field)), "call", field, "missing or not a finite number")
    _check(b["high_hz"] >= b["low_hz"], "call", "high_hz", "below low_hz")
    probs = b.get("probs")
    _check(isinstance(probs, dict) and all(_is_number(v) for v in probs.values()), "call",
           "probs", "must map species to finite numbers")
    for field in ("start_sample", "end_sample"):
        _check(_is_int(b.get(field)) and b[field] >= 0, "call", field, "not a sample index")
    _check(b["end_sample"] >= b["start_sample"], "call", "end_sample", "before start_sample")
    _check(_is_int(b.get("sample_rate")) and b["sample_rate"] > 0, "call", "sample_rate",
           "not a positive integer")


def validate_call_summary(body: object) -> None:
    """Raise ``ValueError`` naming the first bad field of a published call summary."""
    b = _check_common(body, CALL_SUMMARY_SCHEMA, "call summary")
    counts, max_prob = b.get("counts"), b.get("max_prob")
    if not isinstance(counts, dict) or not all(_is_int(v) and v >= 0 for v in counts.values()):
        raise ValueError("call summary field 'counts': must map species to non-negative integers")
    _check(isinstance(max_prob, dict) and set(max_prob) == set(counts)
           and all(_is_number(v) for v in max_prob.values()), "call summary", "max_prob",
           "must map each counted species to a finite number")
    _check(_is_int(b.get("calls")) and b["calls"] == sum(counts.values()), "call summary",
           "calls", "must be the sum of counts")
    _check(isinstance(b.get("partial"), bool), "call summary", "partial", "not true/false")
