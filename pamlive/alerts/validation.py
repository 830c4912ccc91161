"""An operator's verdict on a detection: the ``pamlive.validation/1`` body (docs/contracts.md).

Why: mitigation keeps a person between the detector and the action; a verdict says
"yes, that is a right whale" (``confirmed``), "no" (``rejected``) or ``unsure``, with the
class as validated (a species correction) and a note. The monitor publishes each verdict
as ``validation.<class>`` (the detection's class), logged first like a detection. Pure
functions here: the request a client sends, its check, and the published body.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pamlive.alerts.schema import (
    VALIDATION_SCHEMA,
    VALIDATION_TOPIC_PREFIX,
    parse_utc,
    utc_iso,
    validate_envelope,
)

VERDICTS = ("confirmed", "rejected", "unsure")
MAX_TEXT = 500  # a note or a class name longer than this is refused (bad_request)
_FIELDS = {"detection_id", "verdict", "class", "operator", "note"}


class VerdictError(ValueError):
    """A refused verdict; ``code`` is the reply's (docs/alerts.md, "Validation")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def validation_topic(class_name: str) -> str:
    return VALIDATION_TOPIC_PREFIX + class_name


def _text(request: dict, name: str, required: bool = False) -> str | None:
    value = request.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise VerdictError("bad_request", f"validate.{name} must be a non-empty string of at "
                                          f"most {MAX_TEXT} characters")
    return value


def parse_verdict(request: object) -> dict[str, Any]:
    """Check the ``validate`` object of a request; returns its fields (``class`` and
    ``operator`` may be None: the detection's class, the client's name unknown)."""
    if not isinstance(request, dict):
        raise VerdictError("bad_request", "validate must be a JSON object")
    unknown = set(request) - _FIELDS
    if unknown:
        raise VerdictError("bad_request", f"unknown validate fields {sorted(unknown)}")
    if request.get("verdict") not in VERDICTS:
        raise VerdictError("bad_request", f"validate.verdict must be one of {list(VERDICTS)}")
    return {"detection_id": _text(request, "detection_id", required=True),
            "verdict": request["verdict"], "class": _text(request, "class"),
            "operator": _text(request, "operator"), "note": _text(request, "note")}


def validation_body(detection: dict[str, Any], verdict: dict[str, Any], operator: str,
                    now: datetime | None = None) -> dict[str, Any]:
    """The body to publish (the bus adds ``run_id``, ``seq``, ``station``, ``time_utc``).

    It carries the detection as published (``detection``), so a subscriber that only
    forwards confirmed detections needs nothing else, and the detection's times, so
    replay's ``since_utc`` picks a verdict with its detection."""
    body: dict[str, Any] = {
        "schema": VALIDATION_SCHEMA,
        "verdict_id": uuid.uuid4().hex,
        "detection_id": detection["id"],
        "verdict": verdict["verdict"],
        "class": detection["class"],
        "validated_class": verdict["class"] or detection["class"],
        "operator": operator,
        "validated_utc": utc_iso(now or datetime.now(UTC)),
        "start_utc": detection["start_utc"],
        "end_utc": detection["end_utc"],
        "detection": detection,
    }
    if verdict["note"] is not None:
        body["note"] = verdict["note"]
    return body


def _check(cond: bool, field: str, why: str) -> None:
    if not cond:
        raise ValueError(f"validation field {field!r}: {why}")


def validate_validation(body: object) -> None:
    """Raise ``ValueError`` naming the first bad field of a published verdict."""
    validate_envelope(body)
    assert isinstance(body, dict)
    _check(body.get("schema") == VALIDATION_SCHEMA, "schema", f"must be {VALIDATION_SCHEMA!r}")
    for name in ("detection_id", "class", "validated_class", "operator", "verdict_id"):
        _check(isinstance(body.get(name), str) and body[name] != "", name,
               "missing or not a non-empty string")
    _check(body.get("verdict") in VERDICTS, "verdict", f"must be one of {list(VERDICTS)}")
    for name in ("validated_utc", "start_utc", "end_utc"):
        try:
            parse_utc(body.get(name))  # type: ignore[arg-type]
        except ValueError as e:
            raise ValueError(f"validation field {name!r}: {e}") from None
    if "note" in body:
        _check(isinstance(body["note"], str), "note", "not a string")
    if "detection" in body:
        _check(isinstance(body["detection"], dict), "detection", "not an object")
