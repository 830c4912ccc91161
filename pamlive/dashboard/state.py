"""What the dashboard knows, updated from bus events; the views only read it.

Kept free of sockets and of rich so every rule (what raises the alarm, what counts as
malformed, when the monitor is lost) is tested by feeding events and checking fields.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pamlive.alerts.client import BusEvent
from pamlive.alerts.schema import (
    BEARING_TOPIC_PREFIX,
    CALL_SUMMARY_TOPIC,
    CALL_TOPIC_PREFIX,
    DETECTION_TOPIC_PREFIX,
    ONSET_TOPIC_PREFIX,
    VALIDATION_TOPIC_PREFIX,
    parse_utc,
)
from pamlive.dashboard.calls import CallBoard
from pamlive.dashboard.review import Review
from pamlive.live.spectrum import SPECTRUM_SCHEMA, SPECTRUM_TOPIC

ALARM_CLASSES = frozenset({"right_whale"})
ALARM_HOLD_S = 15.0  # the banner stays this long after the last alarming detection
RECENT_REPLAY_S = 120.0  # a healed detection this fresh still alarms; older ones are history
MAX_PENDING_BELLS = 3  # a burst rings a few times, not once per message
MAX_DETECTIONS = 500
MAX_SPECTRUM_ROWS = 600
MAX_ALARMED_IDS = 1000  # onsets remembered, so their closed detections do not ring again


@dataclass(frozen=True)
class DetectionRow:
    """One detection as the list shows it."""

    start_utc: datetime | None
    class_name: str
    score: float
    channels: tuple[int, ...]
    latency_ms: float | None
    replayed: bool
    bearing_deg: float | None
    start_sample: int | None = None  # with the class, names the detection a bearing is for
    bearing_uncertainty_deg: float | None = None
    bearing_candidates_deg: tuple[float, ...] = ()  # a towed line's two mirror bearings
    id: str | None = None  # what a verdict names
    clip: str | None = None  # the monitor's path of its evidence clip


@dataclass
class DashboardState:
    """Everything the dashboard displays; ``apply`` is the only writer."""

    endpoint: str = ""
    channel: int = 0
    started: float = 0.0  # monotonic time the dashboard started
    station: str | None = None
    run_id: str | None = None
    health: dict[str, Any] | None = None
    health_at: float | None = None  # monotonic arrival of the last health message
    heard_at: float | None = None  # monotonic arrival of the last message of any kind
    detections: deque[DetectionRow] = field(default_factory=lambda: deque(maxlen=MAX_DETECTIONS))
    detections_total: int = 0
    spectrum_rows: deque[list[float]] = field(
        default_factory=lambda: deque(maxlen=MAX_SPECTRUM_ROWS))
    spectrum_fmax_hz: float | None = None
    spectrum_row_s: float | None = None
    spectrum_channels: set[int] = field(default_factory=set)
    malformed: int = 0
    last_error: str | None = None
    healed: int = 0  # alerts (onsets, detections) fetched back through replay after a gap
    unhealed_gaps: int = 0
    joined_late_unfetched: bool = False
    last_gap_error: str | None = None
    lost: bool = False
    lost_count: int = 0
    said_goodbye: bool = False  # the last health was the monitor's final one (it stopped)
    alarm_until: float = 0.0
    alarm_text: str = ""
    bells_due: int = 0
    onsets_total: int = 0
    alarmed_ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    calls: CallBoard = field(default_factory=CallBoard)  # an event model's calls (bats)
    review: Review = field(default_factory=Review)  # the operator's verdicts (review.py)

    def apply(self, event: BusEvent, now: float) -> None:
        """Take one bus event (``now``: monotonic seconds); never raises on bad content."""
        if event.kind == "malformed":
            self.malformed += 1
            where = f"topic {event.topic!r}: " if event.topic else ""
            self.last_error = f"{where}{event.error}"
        elif event.kind == "lost":
            self.lost = True
            self.lost_count += 1
        elif event.kind == "recovered":
            self.lost = False
        elif event.kind == "gap":
            after = (event.body or {}).get("after")
            if self.heard_at is None and (after is None or after[1] == 0):
                self.joined_late_unfetched = True  # the run began before we subscribed
            else:
                self.unhealed_gaps += 1
                self.last_gap_error = event.error
        elif event.kind in ("message", "replayed") and event.body is not None:
            self.heard_at = now
            try:
                self._on_message(event, now)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                self.malformed += 1
                self.last_error = f"topic {event.topic!r}: {type(e).__name__}: {e}"

    def _on_message(self, event: BusEvent, now: float) -> None:
        body = event.body
        assert body is not None
        self.run_id = body.get("run_id", self.run_id)
        self.station = body.get("station", self.station)
        if event.topic.startswith(ONSET_TOPIC_PREFIX):
            self._on_onset(body, replayed=event.kind == "replayed", now=now)
        elif event.topic.startswith(DETECTION_TOPIC_PREFIX):
            self._on_detection(body, replayed=event.kind == "replayed", now=now)
        elif event.topic.startswith(BEARING_TOPIC_PREFIX):
            self._on_bearing(body)
        elif event.topic.startswith(VALIDATION_TOPIC_PREFIX):
            self.review.on_validation(body)
        elif event.topic.startswith(CALL_TOPIC_PREFIX):
            self.calls.on_call(body, replayed=event.kind == "replayed")
            if event.kind == "replayed":
                self.healed += 1
        elif event.topic == CALL_SUMMARY_TOPIC:
            self.calls.on_summary(body)
        elif event.topic == "health":
            _check_health(body)
            self.health, self.health_at = body, now
            self.said_goodbye = body.get("final") is True
            if isinstance(body.get("calls"), dict):
                self.calls.on_health(body["calls"])
        elif event.topic == SPECTRUM_TOPIC:
            self._on_spectrum(body)

    def _on_onset(self, body: dict[str, Any], *, replayed: bool, now: float) -> None:
        """A call has begun: the alarm (banner and bell) goes off now, not at its close."""
        start = parse_utc(body["start_utc"])
        class_name, score = str(body["class"]), float(body["score"])
        channels = tuple(int(c) for c in body["channels"])
        self.onsets_total += 1
        if replayed:
            self.healed += 1
        if self._alarm(class_name, start, score, channels, replayed, now, "CALLING"):
            self.alarmed_ids[str(body["id"])] = None
            while len(self.alarmed_ids) > MAX_ALARMED_IDS:
                self.alarmed_ids.popitem(last=False)

    def _on_detection(self, body: dict[str, Any], *, replayed: bool, now: float) -> None:
        start = parse_utc(body["start_utc"])
        bearing = body.get("bearing_deg")
        row = DetectionRow(
            start_utc=start,
            class_name=str(body["class"]),
            score=float(body["score"]),
            channels=tuple(int(c) for c in body["channels"]),
            latency_ms=float(body["latency_ms"]) if body.get("latency_ms") is not None else None,
            replayed=replayed,
            bearing_deg=None,
            start_sample=int(body["start_sample"]) if "start_sample" in body else None,
            id=str(body["id"]) if body.get("id") is not None else None,
            clip=str(body["clip"]) if body.get("clip") is not None else None,
        )
        if bearing is not None:
            row = _with_bearing(row, body)
        self.detections.appendleft(row)
        self.detections_total += 1
        if replayed:
            self.healed += 1
        if body.get("id") in self.alarmed_ids:  # its onset rang already: update the banner
            if self.alarm_active(now):
                self._alarm(row.class_name, start, row.score, row.channels, replayed, now, "",
                            ring=False)
            return
        self._alarm(row.class_name, start, row.score, row.channels, replayed, now, "")

    def _alarm(self, class_name: str, start: datetime, score: float, channels: tuple[int, ...],
               replayed: bool, now: float, note: str, ring: bool = True) -> bool:
        """Raise (or refresh) the banner for an alarming class; True if it did."""
        age_s = (datetime.now(UTC) - start).total_seconds()
        if class_name not in ALARM_CLASSES or (replayed and age_s >= RECENT_REPLAY_S):
            return False
        self.alarm_until = now + ALARM_HOLD_S
        listed = ",".join(str(c) for c in channels)
        self.alarm_text = (f"{class_name.replace('_', ' ').upper()} {note + ' ' if note else ''}"
                           f"{start:%H:%M:%S} UTC  score {score:.2f}  ch {listed}")
        if ring:
            self.bells_due = min(self.bells_due + 1, MAX_PENDING_BELLS)
        return True

    def _on_bearing(self, body: dict[str, Any]) -> None:
        """A ``bearing.<class>`` update: the array's direction for a listed detection."""
        if body.get("bearing_deg") is None:
            return
        key = (str(body["class"]), int(body["start_sample"]))
        for i, row in enumerate(self.detections):
            if (row.class_name, row.start_sample) == key:
                self.detections[i] = _with_bearing(row, body)
                return

    def _on_spectrum(self, body: dict[str, Any]) -> None:
        if body.get("schema") != SPECTRUM_SCHEMA:
            raise ValueError(f"spectrum schema {body.get('schema')!r} is not {SPECTRUM_SCHEMA!r}")
        channel = int(body["channel"])
        self.spectrum_channels.add(channel)
        if channel != self.channel:
            return
        rows = body["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, list) and r for r in rows):
            raise ValueError("spectrum field 'rows' must be a list of non-empty lists")
        fmax = float(body["fmax_hz"])
        if fmax != self.spectrum_fmax_hz:
            self.spectrum_rows.clear()  # another monitor or setting: old rows do not line up
        self.spectrum_fmax_hz = fmax
        self.spectrum_row_s = float(body.get("row_s") or 0.125)
        self.spectrum_rows.extend([float(v) for v in r] for r in rows)

    def alarm_active(self, now: float) -> bool:
        return now < self.alarm_until

    def take_bell(self) -> bool:
        """True once per pending bell (the app rings the terminal and rate-limits)."""
        if self.bells_due:
            self.bells_due -= 1
            return True
        return False


_HEALTH_SECTIONS = ("capture", "ring", "inference", "latency_ms", "drops")
_HEALTH_NUMBERS = ("uptime_s", "sample_rate", "channels", "stream_time_s")


def _with_bearing(row: DetectionRow, body: dict[str, Any]) -> DetectionRow:
    unc = body.get("bearing_uncertainty_deg")
    return replace(row, bearing_deg=float(body["bearing_deg"]),
                   bearing_uncertainty_deg=float(unc) if unc is not None else None,
                   bearing_candidates_deg=tuple(float(c) for c in
                                                body.get("bearing_candidates_deg", ())))


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_health(body: dict[str, Any]) -> None:
    """Reject a health body the views could not draw (they trust what passes)."""
    for key in _HEALTH_SECTIONS:
        section = body.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ValueError(f"health field {key!r} is not an object")
        if not all(v is None or _is_number(v) for v in section.values()):
            raise ValueError(f"health field {key!r} holds a non-number")
    for key in _HEALTH_NUMBERS:
        if body.get(key) is not None and not _is_number(body[key]):
            raise ValueError(f"health field {key!r} is not a number")
    levels = body.get("level_dbfs", [])
    if not isinstance(levels, list) or not all(v is None or _is_number(v) for v in levels):
        raise ValueError("health field 'level_dbfs' must be a list of numbers or nulls")
    if not isinstance(body.get("flags", []), list):
        raise ValueError("health field 'flags' is not a list")
