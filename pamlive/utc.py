"""UTC as text: the one ISO 8601 form on the bus, its parser, and the file-name stamp.

Kept apart from the alert schema because archive names, clip names, GPS reports and the
bus all write or read times the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(t: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a ``Z`` suffix (sorts as text)."""
    if t.tzinfo is None:
        raise ValueError("utc_iso needs a timezone-aware datetime, got a naive one")
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_stamp(t: datetime) -> str:
    """``20260101T120000_250Z``: a UTC time (ms) for file names that sort by time."""
    return f"{t:%Y%m%dT%H%M%S}_{t.microsecond // 1000:03d}Z"


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 time with an explicit offset (``Z`` or ``+hh:mm``) into UTC."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"not an ISO 8601 UTC time: {text!r}") from e
    if t.tzinfo is None:
        raise ValueError(f"time has no UTC offset: {text!r}")
    return t.astimezone(UTC)
