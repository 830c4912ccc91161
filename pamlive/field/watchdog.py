"""Liveness watchdog: notices when the input has gone deaf, and when it came back.

A pure state machine (the clock is passed in, so tests drive it with a fake one):

    ok -> degraded -> deaf -> recovering -> ok   (and every shortcut between them)

* ``deaf``: no audio callbacks for ``no_callback_s``, or every channel dead;
* ``degraded``: some channels dead (digital zero or below ``silence_floor_dbfs`` for
  ``silence_s``; stuck or repeated samples for ``stuck_s``), or more than
  ``overflow_max`` overflows within ``overflow_window_s``;
* ``recovering``: the conditions cleared; after ``recover_s`` of live input on every
  channel the watchdog announces the recovery and returns to ``ok``.

Each change is a :class:`Transition` with the reasons, for a health alert on the bus.
When to reopen the device stream is a separate policy (``field/recovery.py``).
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from pamlive.config import WatchdogSettings


class State(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    DEAF = "deaf"
    RECOVERING = "recovering"

    @property
    def status(self) -> str:
        """The health message's ``status`` (ok | degraded | deaf): recovering is degraded."""
        return "degraded" if self is State.RECOVERING else self.value


@dataclass(frozen=True)
class Transition:
    """A change of state at ``time`` (the injected clock), with why."""

    time: float
    previous: State
    state: State
    reasons: tuple[str, ...]

    @property
    def alert_class(self) -> str:
        """``monitor.deaf``, ``.degraded``, ``.recovering`` or ``monitor.recovered``."""
        return "monitor.recovered" if self.state is State.OK else f"monitor.{self.state.value}"

    def alert_body(self, time_utc: str) -> dict[str, Any]:
        """Body of the bus message ``alert.<alert_class>`` (publisher adds run_id, seq, station)."""
        return {
            "schema": "pamlive.health_alert/1",
            "class": self.alert_class,
            "status": self.state.status,
            "state": self.state.value,
            "previous": self.previous.value,
            "reasons": list(self.reasons),
            "time_utc": time_utc,
        }


# Per-channel dead conditions, and the flag each raises.
_ZERO, _SILENT, _STUCK = "zero", "silent", "stuck"
_DESCRIPTION = {
    _ZERO: "digital zero",
    _SILENT: "below the silence floor",
    _STUCK: "stuck or repeated samples",
}


@njit(cache=True, nogil=True)
def _channel_stats(block, previous, repeat, zero, constant, power):
    """Per channel of ``block`` (frames, channels), in one pass: all samples zero; all
    equal (or, with ``repeat``, equal to ``previous``); the mean square in float64 summed
    in frame order, as numpy's ``mean(square(block, dtype=float64), axis=0)`` does for
    more than one channel (numpy's vector reductions cost ten times more here). NaN is
    neither zero nor equal to anything, as in numpy."""
    frames, channels = block.shape
    for c in range(channels):
        first = block[0, c]
        nonzero = False
        varies = False
        differs = not repeat
        acc = 0.0
        for i in range(frames):
            v = block[i, c]
            nonzero |= v != 0
            varies |= v != first
            if not differs:
                differs = v != previous[i, c]
            x = np.float64(v)
            acc += x * x
        zero[c] = not nonzero
        constant[c] = not varies or not differs
        power[c] = acc / frames


class LivenessWatchdog:
    """Feed it blocks and capture counters; ``tick`` returns the state changes.

    ``observe_block`` runs in the processing thread (one compiled pass over each
    block) and is timed by the *stream*: dead channels are counted in samples, so the
    timers are right at any playback speed and while a backlog drains. ``observe_capture``
    and ``tick`` run in the engine's once-a-second health loop on the host's monotonic
    clock (a missing callback is a wall-time fact). A lock keeps the two sides consistent;
    it is never taken in the audio callback.
    """

    def __init__(self, channels: int, settings: WatchdogSettings, now: float,
                 state: State = State.OK) -> None:
        """``state=State.DEAF`` when this process inherits an outage (see reexec.py)."""
        self.settings = settings
        self.channels = int(channels)
        self.state = state
        self._floor_power = 10.0 ** (settings.silence_floor_dbfs / 10.0)
        self._kind: list[str | None] = [None] * self.channels  # current dead condition
        self._since = np.full(self.channels, np.nan)  # stream time the dead run started
        self._stream_s = 0.0  # stream time at the end of the newest block
        self._previous_block: np.ndarray | None = None
        self._last_callback = now
        self._callbacks = 0
        self._overflows = 0
        self._overflow_events: deque[tuple[float, int]] = deque()
        self._clean_since: float | None = None
        self._reasons: tuple[str, ...] = ()
        self._flags: tuple[str, ...] = ()
        self._lock = threading.Lock()
        # compile (or load) the block pass now, not on the first live block
        silent = np.zeros((1, self.channels), np.float32)
        _channel_stats(silent, silent, False, np.empty(self.channels, np.bool_),
                       np.empty(self.channels, np.bool_), np.empty(self.channels, np.float64))

    # -- inputs ----------------------------------------------------------------------------

    def observe_block(self, block: np.ndarray, stream_s: float) -> None:
        """Classify each channel of ``block`` (frames, channels) as live or dead;
        ``stream_s`` is the stream time (sample index / rate) at the block's end."""
        if block.ndim != 2 or block.shape[1] != self.channels or block.shape[0] == 0:
            raise ValueError(f"expected (frames, {self.channels}) samples, got {block.shape}")
        with self._lock:
            prev = self._previous_block
        repeat = prev is not None and prev.shape == block.shape  # a driver replaying a buffer
        zero = np.empty(self.channels, np.bool_)
        constant = np.empty(self.channels, np.bool_)
        power = np.empty(self.channels, np.float64)
        _channel_stats(block, prev if repeat else block, repeat, zero, constant, power)
        with self._lock:
            self._previous_block = block.copy()
            self._stream_s = stream_s
            self._classify(zero, constant, power, stream_s)

    def _classify(self, zero: np.ndarray, constant: np.ndarray, power: np.ndarray,
                  now: float) -> None:
        for ch in range(self.channels):
            if zero[ch]:
                kind = _ZERO
            elif constant[ch]:
                kind = _STUCK
            elif power[ch] < self._floor_power:
                kind = _SILENT
            else:
                kind = None
            if kind is None:
                self._since[ch] = np.nan
            elif self._kind[ch] is None:
                self._since[ch] = now
            self._kind[ch] = kind

    def observe_capture(self, callbacks: int, overflows: int, now: float) -> None:
        """Capture counters from the audio callback; they may restart from 0 on a reopen."""
        with self._lock:
            self._observe_capture(callbacks, overflows, now)

    def _observe_capture(self, callbacks: int, overflows: int, now: float) -> None:
        if callbacks != self._callbacks:
            self._last_callback = now
        if overflows > self._overflows:
            self._overflow_events.append((now, overflows - self._overflows))
        self._callbacks, self._overflows = callbacks, overflows

    def stream_reopened(self, now: float) -> None:
        """The device stream was reopened: forget per-channel history of the old stream."""
        with self._lock:
            self._forget(now)

    def _forget(self, now: float) -> None:
        self._kind = [None] * self.channels
        self._since[:] = np.nan
        self._previous_block = None
        self._callbacks = self._overflows = 0
        self._last_callback = now

    # -- evaluation ------------------------------------------------------------------------

    def tick(self, now: float) -> list[Transition]:
        """Re-evaluate at ``now``; the transitions since the last tick (usually none)."""
        with self._lock:
            return self._tick(now)

    def _tick(self, now: float) -> list[Transition]:
        deaf, degraded, flags = self._conditions(now)
        live = not deaf and not degraded and self._all_channels_live(now)
        reasons: tuple[str, ...] | list[str]
        if deaf:
            target, reasons = State.DEAF, deaf + degraded
        elif degraded:
            target, reasons = State.DEGRADED, degraded
        elif self.state is State.OK:
            target, reasons = State.OK, ()
        elif self.state is State.RECOVERING:
            if not live:
                self._clean_since = None
            elif self._clean_since is None:
                self._clean_since = now
            clean = self._clean_since
            recovered = clean is not None and now - clean >= self.settings.recover_s
            target = State.OK if recovered else State.RECOVERING
            reasons = ("input live on every channel",) if recovered else self._reasons
        else:
            target, reasons = State.RECOVERING, ("fault conditions cleared",)
            self._clean_since = now if live else None
        self._reasons = tuple(reasons)
        self._flags = (f"monitor.{target.value}", *flags) if target is not State.OK else ()
        if target is self.state:
            return []
        transition = Transition(now, self.state, target, self._reasons)
        self.state = target
        return [transition]

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def flags(self) -> list[str]:
        """Health flags as of the last tick, e.g. ``["monitor.deaf", "capture.no_callbacks"]``."""
        return list(self._flags)

    @property
    def reasons(self) -> list[str]:
        return list(self._reasons)

    @property
    def needs_restart(self) -> bool:
        """Reopening the stream may help: no callbacks, or every channel digital zero."""
        return self.state is State.DEAF and (
            "capture.no_callbacks" in self._flags
            or all(f"channel.{ch}.zero" in self._flags for ch in range(self.channels))
        )

    def _conditions(self, now: float) -> tuple[list[str], list[str], list[str]]:
        s = self.settings
        deaf: list[str] = []
        degraded: list[str] = []
        flags: list[str] = []
        quiet_for = now - self._last_callback
        if quiet_for >= s.no_callback_s:
            deaf.append(f"no audio callbacks for {quiet_for:.1f} s")
            flags.append("capture.no_callbacks")
        dead: list[str] = []
        for ch, kind in enumerate(self._kind):
            if kind is None:
                continue
            limit = s.stuck_s if kind == _STUCK else s.silence_s
            lasted = self._stream_s - float(self._since[ch])  # in samples, as seconds
            if lasted >= limit:
                dead.append(f"channel {ch}: {_DESCRIPTION[kind]} for {lasted:.1f} s")
                flags.append(f"channel.{ch}.{kind}")
        if dead and len(dead) == self.channels:
            deaf.extend(dead)
        else:
            degraded.extend(dead)
        while self._overflow_events and now - self._overflow_events[0][0] > s.overflow_window_s:
            self._overflow_events.popleft()
        recent = sum(n for _, n in self._overflow_events)
        if recent > s.overflow_max:
            degraded.append(f"{recent} input overflows in {s.overflow_window_s:g} s")
            flags.append("capture.overflows")
        return deaf, degraded, flags

    def _all_channels_live(self, now: float) -> bool:
        flowing = now - self._last_callback < self.settings.no_callback_s
        return flowing and all(kind is None for kind in self._kind)
