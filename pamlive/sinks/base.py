"""The sink protocol and the loop that feeds one from the bus."""

from __future__ import annotations

import threading
from typing import Protocol

from pamlive.alerts.client import AlertClient, BusEvent
from pamlive.sinks.state import ResumeState


class Sink(Protocol):
    """Somewhere alerts are delivered, one at a time and in order.

    ``alert`` returns once the alert is delivered (then its position is saved) or raises:
    a sink that cannot deliver stops, and its restart resumes from the last one it did.
    """

    def alert(self, event: BusEvent) -> None:
        """Deliver one alert (``event.alert``: onset, detection, bearing, call ...)."""

    def notice(self, event: BusEvent) -> None:
        """Pass on the monitor's state (``event.liveness``) or a ``gap`` that replay
        could not heal."""

    def close(self) -> None:
        """Release the connection or device."""


def forward(sink: Sink, client: AlertClient, state: ResumeState,
            stop: threading.Event) -> None:
    """Deliver every alert ``client`` hands out to ``sink``, saving each one's position
    once delivered, until ``stop`` is set (checked between alerts, so a stop never falls
    between a delivery and its save)."""
    while not stop.is_set():
        for event in client.poll(500):
            if stop.is_set():
                return
            position = event.position
            if position is not None:  # "onset", "detection", "bearing" ...
                sink.alert(event)
                state.save(position)  # this alert's, not the newest's
            elif event.liveness is not None or event.kind == "gap":
                sink.notice(event)
