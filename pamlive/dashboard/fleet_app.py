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

import zmq
from rich.console import Console
from rich.layout import Layout
from rich.live import Live

from pamlive.alerts.client import AlertClient, BusEvent
from pamlive.dashboard.fleet import FleetState
from pamlive.dashboard.fleet_views import render_fleet
from pamlive.dashboard.pacing import BELL_INTERVAL_S, POLL_S, urgent
from pamlive.dashboard.stations import Station
from pamlive.errors import ConfigError

QUEUE_BATCHES = 256  # batches of events (one per poll per station) waiting for the screen
LOST_AFTER_S = 5.0  # a station silent this long is shown lost (well within 10 s)

Batch = tuple[int, list[BusEvent]]


def _connect(station: Station) -> AlertClient:
    try:
        return AlertClient(station.endpoint, replay_endpoint=station.replay,
                           lost_after_s=LOST_AFTER_S, curve_server_key=station.server_key,
                           curve_client_keypair=station.client_keypair)
    except zmq.ZMQError as e:
        raise ConfigError(f"dashboard: cannot connect to {station.endpoint!r}: {e}") from None


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
) -> int:
    """Show every station until ``stop_event``, ``duration_s`` or Ctrl-C."""
    console = console or Console()
    started = time.monotonic()
    fleet = FleetState.watching(stations, started)
    clients: list[AlertClient] = []
    try:
        for station in stations:
            clients.append(_connect(station))
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
    stop_event = stop_event or threading.Event()
    deadline = started + duration_s if duration_s is not None else None
    last_bell = -float("inf")
    drawn_second = int(time.time())

    def screen(now: float) -> Layout:  # sized on every draw: the terminal may be resized
        return render_fleet(fleet, now, console.height, console.width)

    try:
        with Live(screen(started), console=console, auto_refresh=False,
                  screen=console.is_terminal, redirect_stderr=False) as live:
            while not stop_event.is_set() and (deadline is None or time.monotonic() < deadline):
                drawn_now = _drain(batches, fleet)
                now = time.monotonic()
                if now - last_bell >= BELL_INTERVAL_S and fleet.take_bell() and bell:
                    console.bell()
                    last_bell = now
                second = int(time.time())
                if second != drawn_second or drawn_now:
                    live.update(screen(now), refresh=True)
                    drawn_second = second
            live.update(screen(time.monotonic()), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
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

