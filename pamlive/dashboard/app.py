"""The dashboard loop: bus events -> state -> screen, plus the terminal bell.

It subscribes like any other client (``pamlive.alerts.client.AlertClient``), so it works the
same against a monitor in this process, on this machine or across a network.
"""

from __future__ import annotations

import argparse
import getpass
import threading
import time
from pathlib import Path

import zmq
import zmq.auth
from rich.console import Console
from rich.layout import Layout
from rich.live import Live

from pamlive.alerts.client import AlertClient, BusEvent
from pamlive.alerts.operator import VerdictConnection
from pamlive.alerts.schema import DETECTION_TOPIC_PREFIX
from pamlive.alerts.security import refuse_ipv6
from pamlive.dashboard.keys import KeyReader
from pamlive.dashboard.review import take_keys
from pamlive.dashboard.state import DashboardState
from pamlive.dashboard.views import render
from pamlive.errors import ConfigError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
POLL_S = 0.1
# A frame is the whole screen (rich has no partial redraw), heavy over a ship's SSH link:
# draw when the clock's second turns, and at once for what an operator must see now.
URGENT_KINDS = frozenset({"lost", "recovered"})
BELL_INTERVAL_S = 1.0  # a burst of detections rings at most once a second
CLIP_FMAX_HZ = 500.0  # a clip is drawn to the live strip's top, else to this


def run_dashboard(
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    replay_endpoint: str | None = None,
    channel: int = 0,
    stop_event: threading.Event | None = None,
    duration_s: float | None = None,
    bell: bool = True,
    console: Console | None = None,
    curve_server_key: bytes | None = None,
    curve_client_keypair: tuple[bytes, bytes] | None = None,
    operator: str | None = None,
) -> int:
    """Show the monitor at ``endpoint`` until ``stop_event``, ``duration_s`` or Ctrl-C;
    on a terminal, take the operator's keys (verdicts go to ``replay_endpoint``)."""
    if channel < 0:
        raise ConfigError(f"dashboard: channel must be >= 0, got {channel}")
    console = console or Console()
    started = time.monotonic()
    state = DashboardState(endpoint=endpoint, channel=channel, started=started)
    try:
        client = AlertClient(endpoint, replay_endpoint=replay_endpoint,
                             curve_server_key=curve_server_key,
                             curve_client_keypair=curve_client_keypair)
    except zmq.ZMQError as e:
        raise ConfigError(f"dashboard: cannot connect to {endpoint!r}: {e}") from None
    verdicts = (VerdictConnection(replay_endpoint, curve_server_key=curve_server_key,
                                  curve_client_keypair=curve_client_keypair)
                if replay_endpoint is not None else None)
    keys = KeyReader() if console.is_terminal else None
    stop_event = stop_event or threading.Event()
    deadline = started + duration_s if duration_s is not None else None
    last_bell = -float("inf")
    drawn_second = int(time.time())

    def screen(now: float) -> Layout:  # sized on every draw: the terminal may be resized
        return render(state, now, console.height, console.width)

    try:
        with Live(screen(started), console=console, auto_refresh=False,
                  screen=console.is_terminal, redirect_stderr=False) as live:
            while not stop_event.is_set() and (deadline is None or time.monotonic() < deadline):
                events = client.poll(int(POLL_S * 1000))
                now = time.monotonic()
                for event in events:
                    state.apply(event, now)
                typed = take_keys(state.review, keys.read() if keys else [], state.detections,
                                  verdicts, operator, channel,
                                  state.spectrum_fmax_hz or CLIP_FMAX_HZ)
                if now - last_bell >= BELL_INTERVAL_S and state.take_bell() and bell:
                    console.bell()
                    last_bell = now
                second = int(time.time())
                if second != drawn_second or typed or any(_urgent(e) for e in events):
                    live.update(screen(now), refresh=True)
                    drawn_second = second
            live.update(screen(time.monotonic()), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
        if keys is not None:
            keys.close()
        if verdicts is not None:
            verdicts.close()
    return 0


def _urgent(event: BusEvent) -> bool:
    """A detection, a lost or recovered link, or the monitor's goodbye: drawn at once."""
    return (event.kind in URGENT_KINDS or event.topic.startswith(DETECTION_TOPIC_PREFIX)
            or (event.topic == "health" and (event.body or {}).get("final") is True))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pamlive dashboard",
                                description="terminal dashboard subscribed to a running monitor")
    p.add_argument("--connect", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                   help=f"the monitor's alert bus (default {DEFAULT_ENDPOINT})")
    p.add_argument("--replay", default=None, metavar="ENDPOINT",
                   help="the monitor's replay endpoint, to heal missed detections "
                        "(e.g. tcp://127.0.0.1:5557)")
    p.add_argument("--channel", type=int, default=0, metavar="N",
                   help="channel shown in the spectrogram (0-based)")
    p.add_argument("--no-bell", action="store_true", help="no terminal bell on an alarm")
    p.add_argument("--duration", type=float, default=None, help="quit after this many seconds")
    p.add_argument("--server-key", type=Path, metavar="FILE",
                   help="CURVE: the monitor's public certificate (.key)")
    p.add_argument("--client-key", type=Path, metavar="FILE",
                   help="CURVE: this client's secret certificate (.key_secret)")
    p.add_argument("--operator", default=None, metavar="NAME",
                   help="who gives the verdicts, on a monitor without CURVE (default: your "
                        "login name; with CURVE the monitor names you by your key)")
    return p


def _load_curve(server: Path | None, client: Path | None) -> tuple[bytes | None, tuple | None]:
    if server is None and client is None:
        return None, None
    if server is None or client is None:
        raise ConfigError("dashboard: CURVE needs both --server-key and --client-key")
    try:
        server_public, _ = zmq.auth.load_certificate(server)
        client_public, client_secret = zmq.auth.load_certificate(client)
    except (OSError, ValueError) as e:
        raise ConfigError(f"dashboard: cannot read CURVE certificate: {e}") from None
    if client_secret is None:
        raise ConfigError(f"dashboard: --client-key {client} is a public certificate; "
                          "give the .key_secret")
    return server_public, (client_public, client_secret)


def main(argv: list[str] | None = None) -> int:
    """``pamlive dashboard [--connect ENDPOINT] [--replay ENDPOINT] [--channel N]``."""
    args = _parser().parse_args(argv)
    for name, ep in (("--connect", args.connect), ("--replay", args.replay)):
        if ep is not None and "://" not in ep:
            raise ConfigError(f"dashboard: {name} must be a ZeroMQ endpoint like "
                              f"tcp://host:5556, got {ep!r}")
        if ep is not None:
            refuse_ipv6(ep, f"dashboard: {name}")
    server_key, client_keypair = _load_curve(args.server_key, args.client_key)
    return run_dashboard(args.connect, replay_endpoint=args.replay, channel=args.channel,
                         duration_s=args.duration, bell=not args.no_bell,
                         curve_server_key=server_key, curve_client_keypair=client_keypair,
                         operator=args.operator or _login())


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return None
