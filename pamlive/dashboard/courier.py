"""Verdicts leave the dashboard on their own thread.

Why: a verdict is a request to a monitor, answered within the connection's timeout (6 s).
Sent from the screen loop, a monitor that does not answer (lost, on a slow link) would
freeze the screen, alarms included, for that long. The courier takes each verdict at once
("sending ..."), sends it on its thread, and hands the answer back for the next frame.

Ownership: a verdict's connection is used by the courier's thread only, from its first
send until :meth:`VerdictCourier.close` has joined the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

MAX_WAITING = 4  # verdicts typed while one is on its way; more are refused, not queued
SENDING = "sending verdict ..."


class VerdictCourier:
    """Runs verdict sends (callables returning the operator's line) one at a time."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], str] | None] = queue.Queue(MAX_WAITING)
        self._answers: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.refused = 0
        self._thread = threading.Thread(target=self._run, name="pamlive-verdicts", daemon=True)
        self._thread.start()

    def send(self, job: Callable[[], str]) -> str:
        """Queue ``job``; the line to show until its answer comes."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self.refused += 1
            return f"verdict NOT sent: {MAX_WAITING} still on their way; give it again"
        return SENDING

    def answers(self) -> list[str]:
        """The lines of the verdicts answered since the last call, oldest first."""
        out = []
        while True:
            try:
                out.append(self._answers.get_nowait())
            except queue.Empty:
                return out

    def close(self, timeout_s: float = 10.0) -> None:
        """Let the verdicts on their way finish (each within its connection's timeout)."""
        try:
            self._jobs.put(None, timeout=timeout_s)
        except queue.Full:  # still busy after timeout_s: the thread is a daemon
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._answers.put(job())
            except Exception as exc:
                self._answers.put(f"verdict NOT taken: {exc}")
