"""How the dashboards poll, draw and ring: the loop shared by the single and the fleet view.

A frame is the whole screen (rich has no partial redraw), heavy over a ship's SSH link:
draw when the clock's second turns, and at once for what an operator must see now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.layout import Layout
from rich.live import Live

from pamlive.alerts.client import BusEvent
from pamlive.alerts.schema import DETECTION_TOPIC_PREFIX

POLL_S = 0.1
URGENT_KINDS = frozenset({"lost", "recovered"})
BELL_INTERVAL_S = 1.0  # a burst of detections rings at most once a second


def urgent(event: BusEvent) -> bool:
    """A detection, a lost or recovered link, or the monitor's goodbye: drawn at once."""
    return (event.kind in URGENT_KINDS or event.topic.startswith(DETECTION_TOPIC_PREFIX)
            or (event.topic == "health" and (event.body or {}).get("final") is True))


def show(console: Console, screen: Callable[[float], Layout], step: Callable[[], bool],
         take_bell: Callable[[], bool], *, stop_event: threading.Event | None,
         deadline: float | None, bell: bool) -> None:
    """Until ``stop_event``, the monotonic ``deadline`` or Ctrl-C: take what arrived
    (``step``, waiting up to about ``POLL_S``; True if it must be drawn at once), ring the
    bell at most once a second, and draw ``screen(now)`` when the clock's second turns."""
    stop_event = stop_event or threading.Event()
    last_bell = -float("inf")
    drawn_second = int(time.time())
    try:
        with Live(screen(time.monotonic()), console=console, auto_refresh=False,
                  screen=console.is_terminal, redirect_stderr=False) as live:
            while not stop_event.is_set() and (deadline is None or time.monotonic() < deadline):
                draw_now = step()
                now = time.monotonic()
                if now - last_bell >= BELL_INTERVAL_S and take_bell() and bell:
                    console.bell()
                    last_bell = now
                second = int(time.time())
                if second != drawn_second or draw_now:
                    live.update(screen(now), refresh=True)
                    drawn_second = second
            live.update(screen(time.monotonic()), refresh=True)
    except KeyboardInterrupt:
        pass
