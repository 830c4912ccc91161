"""How often the dashboards poll, draw and ring: shared by the single and the fleet view.

A frame is the whole screen (rich has no partial redraw), heavy over a ship's SSH link:
draw when the clock's second turns, and at once for what an operator must see now.
"""

from __future__ import annotations

from pamlive.alerts.client import BusEvent
from pamlive.alerts.schema import DETECTION_TOPIC_PREFIX

POLL_S = 0.1
URGENT_KINDS = frozenset({"lost", "recovered"})
BELL_INTERVAL_S = 1.0  # a burst of detections rings at most once a second


def urgent(event: BusEvent) -> bool:
    """A detection, a lost or recovered link, or the monitor's goodbye: drawn at once."""
    return (event.kind in URGENT_KINDS or event.topic.startswith(DETECTION_TOPIC_PREFIX)
            or (event.topic == "health" and (event.body or {}).get("final") is True))
