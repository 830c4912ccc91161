"""Health alerts that a component raises on its own thread, for the engine to publish.

The raw archive and the clip worker notice a full disk (and its end) on their writer
threads; they ``add`` an ``(alert class, message)`` here and the engine's supervisor
``drain``s them once a second into ``alert.<class>`` bus messages.
"""

from __future__ import annotations

from collections import deque


class HealthAlerts:
    """A bounded first-in first-out of ``(alert class, message)`` (oldest dropped)."""

    def __init__(self, maxlen: int = 64) -> None:
        self._alerts: deque[tuple[str, str]] = deque(maxlen=maxlen)

    def add(self, alert_class: str, message: str) -> None:
        self._alerts.append((alert_class, message))

    def drain(self) -> list[tuple[str, str]]:
        """The alerts since the last call, oldest first."""
        alerts = []
        while self._alerts:
            alerts.append(self._alerts.popleft())
        return alerts
