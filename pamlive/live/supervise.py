"""Supervision: liveness alerts, systemd notifications, and when to reopen the device.

Once a second the engine hands the supervisor the capture counters and the samples
processed. It ticks the liveness watchdog and publishes each state change as
``alert.monitor.<state>``; forwards the events of components that raise their own health
alerts (raw archive disk full, clips not written); tells systemd READY once audio flows,
WATCHDOG=1 only while processing advances, and a STATUS line; and decides when a dead
sound card is worth reopening (a re-exec, see ``field/reexec.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pamlive.field.reexec import Outage
from pamlive.field.sdnotify import Notifier, ProgressPinger, watchdog_interval_s
from pamlive.field.watchdog import LivenessWatchdog, State
from pamlive.live.health import Part
from pamlive.sources import CaptureCounters
from pamlive.utc import utc_iso

log = logging.getLogger(__name__)


class AlertSource(Protocol):
    def drain_events(self) -> list[tuple[str, str]]:
        """``(alert class, message)`` pairs since the last call."""


class Supervisor:
    """Watchdog ticks, component alerts, sd_notify; all on the engine's thread."""

    def __init__(self, watchdog: LivenessWatchdog, publish: Callable[[str, dict[str, Any]], None],
                 outage: Outage | None) -> None:
        self.watchdog = watchdog
        self.publish = publish
        self.outage = outage  # inherited from the process before a re-exec, if any
        self.alert_sources: list[AlertSource] = []
        self.notifier = Notifier.from_env()
        self.pinger = ProgressPinger(self.notifier, watchdog_interval_s())
        self._ready_sent = False
        self._deaf_since: float | None = None

    def ready(self, processed: int, text: str) -> None:
        """READY=1 once, when the first audio has been processed."""
        if not self._ready_sent and processed > 0:
            self._ready_sent = self.notifier.ready(text)

    def tick(self, now: float, processed: int, capture: CaptureCounters, rate: int) -> None:
        self.pinger.maybe_ping(processed, now)
        self.notifier.status(f"{self.watchdog.status}: {processed / rate:.0f} s processed")
        self.forward_alerts()
        self.watchdog.observe_capture(capture.callbacks, capture.overflows, now)
        for t in self.watchdog.tick(now):
            if t.state is State.DEAF:
                self._deaf_since = time.time()
            log.warning("%s: %s", t.alert_class, "; ".join(t.reasons))
            self.publish(f"alert.{t.alert_class}", t.alert_body(utc_iso(datetime.now(UTC))))

    def forward_alerts(self) -> None:
        """Publish the components' own health alerts (e.g. ``alert.clips.write_failed``)."""
        for source in self.alert_sources:
            for cls, message in source.drain_events():
                self.publish(f"alert.{cls}", {
                    "schema": "pamlive.health_alert/1", "class": cls, "reasons": [message],
                    "time_utc": utc_iso(datetime.now(UTC))})

    def restart(self) -> Outage | None:
        """The outage to hand to a re-exec when reopening the device may help, else None."""
        if not self.watchdog.needs_restart:
            return None
        restarts = self.outage.restarts + 1 if self.outage else 0
        return Outage(self._deaf_since or time.time(), restarts, tuple(self.watchdog.reasons))

    def stopping(self) -> None:
        self.notifier.stopping("stopping")

    def part(self) -> Part | None:
        """``sd_notify`` counters when systemd listens; a failed notification is flagged."""
        if not self.notifier.enabled:
            return None
        n = self.notifier
        return Part("sd_notify", {"sent": n.sent, "failed": n.failed},
                    ("sd_notify.failed",) if n.failed else ())
