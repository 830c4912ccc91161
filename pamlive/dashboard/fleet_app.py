"""The fleet view's loop: one :class:`AlertClient` per station, each in its own thread, all
feeding one bounded queue that the screen drains.

A thread per station keeps the stations apart: a station whose replay server stops
answering holds up its own thread for the retries, never the others' rows. The queue
never drops: when it is full a station's thread waits, and the monitor's messages wait
in that station's socket buffer (gaps there are healed through replay like any other).
"""

from __future__ import annotations

import queue
import threading
import time

from rich.console import Console
from rich.layout import Layout

from pamlive.alerts.client import AlertClient, BusEvent
from pamlive.dashboard.fleet import FleetState
from pamlive.dashboard.fleet_review import FleetVerdicts
from pamlive.dashboard.fleet_views import render_fleet
from pamlive.dashboard.keys import KeyReader
from pamlive.dashboard.pacing import POLL_S, show, urgent
from pamlive.dashboard.stations import Station
from pamlive.errors import ConfigError

QUEUE_BATCHES = 256  # batches of events (one per poll per station) waiting for the screen
LOST_AFTER_S = 5.0  # a station silent this long is shown lost (well within 10 s)

Batch = tuple[int, list[BusEvent]]


def _listen(index: int, client: AlertClient, out: queue.Queue[Batch],
            stop: threading.Event) -> None:
    """A station's thread: poll its client, hand each batch on; waits when the queue is full."""
    try:
        while not stop.is_set():
            events = client.poll(int(POLL_S * 1000))
            while events and not stop.is_set():
                try:
                    out.put((index, events), timeout=POLL_S)
                    break
                except queue.Full:
                    continue
    finally:
        client.close()


def run_fleet(
    stations: list[Station],
    *,
    stop_event: threading.Event | None = None,
    duration_s: float | None = None,
    bell: bool = True,
    console: Console | None = None,
    operator: str | None = None,
) -> int:
    """Show every station until ``stop_event``, ``duration_s`` or Ctrl-C; on a terminal,
    take the operator's keys (each verdict goes to its detection's station)."""
    console = console or Console()
    started = time.monotonic()
    fleet = FleetState.watching(stations, started)
    clients: list[AlertClient] = []
    try:
        for s in stations:  # a bad endpoint is a ConfigError, before any thread starts
            clients.append(AlertClient(s.endpoint, replay_endpoint=s.replay,
                                       lost_after_s=LOST_AFTER_S, curve_server_key=s.server_key,
                                       curve_client_keypair=s.client_keypair))
    except ConfigError:
        for client in clients:
            client.close()
        raise
    batches: queue.Queue[Batch] = queue.Queue(maxsize=QUEUE_BATCHES)
    stop_threads = threading.Event()
    threads = [threading.Thread(target=_listen, args=(i, c, batches, stop_threads),
                                name=f"fleet-{i}", daemon=True) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()

    def screen(now: float) -> Layout:  # sized on every draw: the terminal may be resized
        return render_fleet(fleet, now, console.height, console.width)

    keys = KeyReader() if console.is_terminal else None
    verdicts = FleetVerdicts(fleet, operator)

    def step() -> bool:
        arrived = _drain(batches, fleet)
        return verdicts.take(keys.read() if keys else []) or arrived

    try:
        show(console, screen, step, fleet.take_bell,
             stop_event=stop_event,
             deadline=started + duration_s if duration_s is not None else None, bell=bell)
    finally:
        if keys is not None:
            keys.close()
        verdicts.close()
        stop_threads.set()
        for thread in threads:
            thread.join(timeout=10)
    return 0


def _drain(batches: queue.Queue[Batch], fleet: FleetState) -> bool:
    """Apply every waiting batch (waiting up to a poll for the first); True if one must
    be drawn at once (a detection, a lost or recovered station, a goodbye)."""
    try:
        pending = [batches.get(timeout=POLL_S)]
    except queue.Empty:
        return False
    while True:
        try:
            pending.append(batches.get_nowait())
        except queue.Empty:
            break
    now = time.monotonic()
    for index, events in pending:
        for event in events:
            fleet.apply(index, event, now)
    return any(urgent(e) for _, events in pending for e in events)

