"""Reopening a lost input stream: exponential backoff, and finding the device again.

The liveness watchdog (``field/watchdog.py``) says when the input is deaf and reopening
may help; this is the policy for the attempts that follow.
"""

from __future__ import annotations

from typing import Any


class DeviceRecovery:
    """When to try reopening a lost input stream: now, then 1, 2, 4 ... up to 30 s apart.

    The monitor calls ``lost(now)`` when the watchdog says ``needs_restart`` (or the stream
    reports an error), ``due(now)`` from its health loop, and ``failed``/``succeeded``
    after each attempt. Reopening re-scans PortAudio (a replugged USB interface or a
    restarted JACK server is only seen by a fresh PortAudio) and finds the device by its
    stable name with :func:`find_input_device`, since its index may have changed.
    """

    def __init__(self, initial_s: float = 1.0, max_s: float = 30.0, factor: float = 2.0) -> None:
        self.initial_s, self.max_s, self.factor = initial_s, max_s, factor
        self.active = False
        self.attempts = 0  # failed attempts in the current outage
        self.recoveries = 0  # outages ended by a successful reopen
        self.next_attempt: float | None = None

    def lost(self, now: float) -> None:
        if not self.active:
            self.active = True
            self.attempts = 0
            self.next_attempt = now

    def due(self, now: float) -> bool:
        return self.active and self.next_attempt is not None and now >= self.next_attempt

    def failed(self, now: float) -> float:
        """Record a failed attempt; returns the delay before the next one."""
        delay = min(self.max_s, self.initial_s * self.factor**self.attempts)
        self.attempts += 1
        self.next_attempt = now + delay
        return delay

    def succeeded(self) -> None:
        self.active = False
        self.attempts = 0
        self.next_attempt = None
        self.recoveries += 1


def find_input_device(name: str, devices: list[dict[str, Any]], channels: int = 1) -> int | None:
    """Index of the input device called ``name`` (exact, else a unique substring match).

    ``devices`` is ``sounddevice.query_devices()`` (dicts with ``index``, ``name``,
    ``max_input_channels``). None when it is absent or the name is ambiguous, so the
    caller retries later rather than opening the wrong interface.
    """
    usable = [d for d in devices if d.get("max_input_channels", 0) >= channels]
    exact = [d for d in usable if d["name"] == name]
    if len(exact) == 1:
        return int(exact[0]["index"])
    partial = [d for d in usable if name.lower() in d["name"].lower()]
    return int(partial[0]["index"]) if len(partial) == 1 else None
