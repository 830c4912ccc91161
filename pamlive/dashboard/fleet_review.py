"""Validating from the fleet view: the single view's keys, each verdict sent to the
station that heard the detection (``FleetState.verdict_target``).

Why a module of its own: the fleet's state stays free of sockets; this holds one verdict
connection per station (made at its first verdict) and keeps the fleet's selection in
step with the operator's choice (``Review``, chosen by detection id, unique across
monitors since it holds the run id).
"""

from __future__ import annotations

from typing import Any

from pamlive.alerts.operator import VerdictConnection
from pamlive.dashboard.courier import VerdictCourier
from pamlive.dashboard.fleet import FleetAlert, FleetState
from pamlive.dashboard.review import Order, submit


class FleetVerdicts:
    """The operator's keys on the fleet view, and the connections verdicts go through."""

    def __init__(self, fleet: FleetState, operator: str | None) -> None:
        self.fleet = fleet
        self.operator = operator
        self._connections: dict[int, VerdictConnection] = {}  # the courier's thread's
        self.courier = VerdictCourier()

    def take(self, keys: list[str]) -> bool:
        """Apply typed keys (sending any verdict they give); True when the screen must be
        drawn again."""
        fleet = self.fleet
        rows = [alert.row for alert in fleet.alerts]
        for key in keys:
            order = fleet.review.key(key, rows)
            if order is not None:
                fleet.review.message = self._send(order)
        fleet.selected = next((a for a in fleet.alerts if a.detection_id is not None
                               and a.detection_id == fleet.review.selected), None)
        answers = self.courier.answers()
        if answers:
            fleet.review.message = answers[-1]
        return bool(keys or answers)

    def _send(self, order: Order) -> str:
        alert = next((a for a in self.fleet.alerts if a.detection_id == order.detection_id),
                     None)
        target = self.fleet.verdict_target(alert) if alert is not None else None
        if alert is None or target is None:
            return "that detection is no longer listed"
        station, _ = target

        def deliver() -> str:  # on the courier's thread, with the connections
            if alert.station not in self._connections and station.replay is not None:
                self._connections[alert.station] = VerdictConnection(
                    station.replay, curve_server_key=station.server_key,
                    curve_client_keypair=station.client_keypair)
            return f"{alert.name}: " + submit(order, self._connections.get(alert.station),
                                              self.operator)

        return f"{alert.name}: " + self.courier.send(deliver)

    def close(self) -> None:
        self.courier.close()  # first: its thread uses the connections
        for connection in self._connections.values():
            connection.close()


def verdict_of(fleet: FleetState, alert: FleetAlert) -> dict[str, Any] | None:
    """The latest verdict on an alert, as its station published it."""
    return fleet.views[alert.station].state.review.verdicts.get(alert.detection_id or "")
