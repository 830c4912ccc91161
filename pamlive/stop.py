"""Why a monitor stopped: the reason its stop line, its goodbye and its exit status give.

The reason travels with the stop request (:class:`Stop`, set by a signal handler) or is
what the engine saw end the run (end of input, a vanished device, a failed stage), so
the last health message can say it before the process exits (docs/contracts.md,
"Stop reasons").
"""

from __future__ import annotations

import signal
import threading
from enum import StrEnum


class StopReason(StrEnum):
    END_OF_INPUT = "end_of_input"  # the recordings (or a finite source) played to their end
    DURATION = "duration"  # --duration was up
    SIGINT = "sigint"  # Ctrl-C
    SIGTERM = "sigterm"  # systemctl stop, kill, a supervisor
    SIGHUP = "sighup"  # the terminal or SSH session that started it closed
    REQUESTED = "requested"  # the embedding program (or the dashboard's end) asked
    DEVICE_LOST = "device_lost"  # the live input device stopped delivering audio
    INPUT_ERROR = "input_error"  # a recording could not be read to its end
    FAILED = "failed"  # a processing stage died (or the run crashed)
    REEXEC = "reexec"  # not an end: re-executing in place to reopen the device


DESCRIPTIONS = {
    StopReason.END_OF_INPUT: "end of input",
    StopReason.DURATION: "duration reached",
    StopReason.SIGINT: "SIGINT (Ctrl-C)",
    StopReason.SIGTERM: "SIGTERM",
    StopReason.SIGHUP: "SIGHUP (terminal or SSH session closed)",
    StopReason.REQUESTED: "stop requested",
    StopReason.DEVICE_LOST: "input device lost",
    StopReason.INPUT_ERROR: "input unreadable",
    StopReason.FAILED: "processing failed",
    StopReason.REEXEC: "reopening the input device",
}

SIGNALS: dict[int, StopReason] = {signal.SIGINT: StopReason.SIGINT,
                                  signal.SIGTERM: StopReason.SIGTERM,
                                  signal.SIGHUP: StopReason.SIGHUP}


class Stop(threading.Event):
    """A stop request that remembers why; the first reason given wins."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: StopReason | None = None

    def request(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self.set()


def request_stop(event: threading.Event, reason: StopReason) -> None:
    """Stop ``event``'s run, with ``reason`` where the event can hold one."""
    if isinstance(event, Stop):
        event.request(reason)
    else:
        event.set()
