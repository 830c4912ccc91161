"""What the fleet view knows: one :class:`DashboardState` per station, and their alerts merged.

Each station keeps the single-monitor rules (lost, stopped, deaf, alarm, healed gaps) by
being fed its own bus events; this module adds what only a fleet has: the station's
name on every alert, one list for all stations (newest start first), and a selected
alert whose station is the one a client call about it (a verdict) must reach. Free of
sockets and of rich, like ``state.py``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from typing import Any

from pamlive.alerts.client import BusEvent
from pamlive.alerts.schema import BEARING_TOPIC_PREFIX
from pamlive.dashboard.review import Review
from pamlive.dashboard.state import DashboardState, DetectionRow
from pamlive.dashboard.stations import Station

MAX_ALERTS = 500  # merged alerts kept for the list (each station keeps its own as well)
# The health section a monitor reports its detections awaiting a verdict in (issue 24,
# validation): ``{"waiting": N, ...}``. Absent from a monitor without validation.
VALIDATION_HEALTH_KEY = "validation"


@dataclass(frozen=True)
class FleetAlert:
    """One detection in the merged list: which station heard it, and its id there."""

    station: int  # index into ``FleetState.views`` (names may repeat before they are heard)
    name: str
    detection_id: str | None
    row: DetectionRow


@dataclass
class StationView:
    """One station: how to reach it, its dashboard state, and its last known position."""

    station: Station
    state: DashboardState
    position: tuple[float, float] | None = None  # (lat, lon) of its newest detection

    @property
    def name(self) -> str:
        """The configured name, else the monitor's own ``station``, else its endpoint."""
        return self.station.name or self.state.station or self.station.endpoint

    def status(self) -> str:
        """One word for the row: ``LOST``, ``STOPPED``, ``FAILED``, ``WAITING`` (never heard)
        or the monitor's own status (``OK``, ``DEGRADED``, ``DEAF``)."""
        state = self.state
        reported = str((state.health or {}).get("status", "unknown"))
        if state.said_goodbye:
            return "FAILED" if reported == "deaf" else "STOPPED"
        if state.lost:
            return "LOST"
        if state.heard_at is None:
            return "WAITING"
        return reported.upper()

    def last_detection(self) -> DetectionRow | None:
        return self.state.detections[0] if self.state.detections else None

    def waiting_verdicts(self) -> int | None:
        """Detections awaiting an operator's verdict, if the monitor's health says."""
        section = (self.state.health or {}).get(VALIDATION_HEALTH_KEY)
        waiting = section.get("waiting") if isinstance(section, dict) else None
        return waiting if isinstance(waiting, int) and not isinstance(waiting, bool) else None


@dataclass
class FleetState:
    """Every station's state and the merged alerts; ``apply`` is the only writer."""

    views: list[StationView]
    alerts: list[FleetAlert] = field(default_factory=list)  # newest start first
    selected: FleetAlert | None = None
    review: Review = field(default_factory=Review)  # the operator's keys (fleet_review.py)

    @classmethod
    def watching(cls, stations: list[Station], started: float) -> FleetState:
        return cls([StationView(s, DashboardState(endpoint=s.endpoint, started=started))
                    for s in stations])

    def apply(self, index: int, event: BusEvent, now: float) -> None:
        """Take one bus event from station ``index`` (never raises on bad content)."""
        view = self.views[index]
        before = view.state.detections_total
        view.state.apply(event, now)
        body: dict[str, Any] = event.body or {}
        if event.topic.startswith(BEARING_TOPIC_PREFIX):
            self._follow_bearing(index, body)
        if view.state.detections_total == before:
            return  # not a (valid) detection
        position = body.get("position")
        if isinstance(position, dict):
            view.position = (float(position["lat"]), float(position["lon"]))
        alert = FleetAlert(index, view.name, str(body["id"]) if "id" in body else None,
                           view.state.detections[0])
        bisect.insort(self.alerts, alert, key=_newest_first)
        if len(self.alerts) > MAX_ALERTS:
            dropped = self.alerts.pop()
            if dropped is self.selected:
                self.selected = None

    def _follow_bearing(self, index: int, body: dict[str, Any]) -> None:
        """An array's bearing comes after its detection: the merged row takes the row the
        station's state updated (same class and ``start_sample``)."""
        key = (str(body.get("class")), body.get("start_sample"))
        updated = next((row for row in self.views[index].state.detections
                        if (row.class_name, row.start_sample) == key), None)
        if updated is None:
            return
        for i, alert in enumerate(self.alerts):
            if alert.station == index and (alert.row.class_name, alert.row.start_sample) == key:
                self.alerts[i] = replace(alert, row=updated)
                if self.selected is alert:
                    self.selected = self.alerts[i]

    def take_bell(self) -> bool:
        """True once per pending bell of any station."""
        return any(view.state.take_bell() for view in self.views)

    def alarm(self, now: float) -> tuple[str, str] | None:
        """(station name, alarm text) of a station whose alarm is up, else None."""
        return next(((v.name, v.state.alarm_text) for v in self.views
                     if v.state.alarm_active(now)), None)

    def move_selection(self, step: int) -> FleetAlert | None:
        """Select the alert ``step`` rows below the selected one (negative: above); with
        none selected, the newest. The selection follows its alert as others arrive."""
        if not self.alerts:
            self.selected = None
            return None
        here = self.alerts.index(self.selected) if self.selected in self.alerts else None
        target = 0 if here is None else min(max(here + step, 0), len(self.alerts) - 1)
        self.selected = self.alerts[target]
        return self.selected

    def verdict_target(self, alert: FleetAlert | None = None) -> tuple[Station, str] | None:
        """The hook a verdict from the fleet view goes through: the selected alert (or
        ``alert``) -> its station's connection (endpoints, keys) and the detection's id
        there, for the verdict client call. None with nothing selected or no id (a
        monitor from before ids)."""
        alert = alert or self.selected
        if alert is None or alert.detection_id is None:
            return None
        return self.views[alert.station].station, alert.detection_id


def _newest_first(alert: FleetAlert) -> float:
    start = alert.row.start_utc
    return -start.timestamp() if start is not None else 0.0
