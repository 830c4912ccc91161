"""Webhook sink: POST each alert's JSON body, and the monitor's state, to a URL.

Alerts go as the bus's body (``schema`` tells onsets, detections and bearings apart, ``id``
pairs an onset with its detection); the monitor's state as ``{"event": "stopped"|"lost"|
"recovered"|"gap", "detail": ..., "error": ...}``. Standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from pamlive.alerts.client import BusEvent


class WebhookSink:
    """POST with retries and back-off: a detection must not be dropped on a hiccup."""

    def __init__(self, url: str, attempts: int = 5) -> None:
        self.url = url
        self.attempts = attempts

    def alert(self, event: BusEvent) -> None:
        self._post(event.body)

    def notice(self, event: BusEvent) -> None:
        self._post({"event": event.kind, "detail": event.body, "error": event.error})

    def close(self) -> None:
        pass  # a connection per request

    def _post(self, payload: object) -> None:
        data = json.dumps(payload).encode()
        for attempt in range(self.attempts):
            request = urllib.request.Request(self.url, data,
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10):
                    return
            except (urllib.error.URLError, TimeoutError):
                time.sleep(2**attempt)
        raise RuntimeError(f"webhook {self.url} unreachable after {self.attempts} attempts")
