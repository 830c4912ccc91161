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
from rich.console import Console
from rich.layout import Layout

from pamlive.alerts.client import AlertClient
from pamlive.alerts.operator import VerdictConnection
from pamlive.dashboard.courier import VerdictCourier
from pamlive.dashboard.fleet_app import run_fleet
from pamlive.dashboard.keys import KeyReader
from pamlive.dashboard.pacing import POLL_S, show, urgent
from pamlive.dashboard.review import take_keys
from pamlive.dashboard.state import DashboardState
from pamlive.dashboard.stations import (
    DEFAULT_ENDPOINT,
    stations_from_args,
    stations_from_toml,
)
from pamlive.dashboard.views import render
from pamlive.errors import ConfigError

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
    courier = VerdictCourier()

    def step() -> bool:
        events = client.poll(int(POLL_S * 1000))
        now = time.monotonic()
        for event in events:
            state.apply(event, now)
        typed = take_keys(state.review, keys.read() if keys else [], state.detections,
                          verdicts, courier, operator, channel,
                          state.spectrum_fmax_hz or CLIP_FMAX_HZ)
        return typed or any(urgent(e) for e in events)

    def screen(now: float) -> Layout:  # sized on every draw: the terminal may be resized
        return render(state, now, console.height, console.width)

    try:
        show(console, screen, step, state.take_bell, stop_event=stop_event,
             deadline=started + duration_s if duration_s is not None else None, bell=bell)
    finally:
        client.close()
        if keys is not None:
            keys.close()
        courier.close()  # before its connection closes: the courier's thread uses it
        if verdicts is not None:
            verdicts.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pamlive dashboard",
                                description="terminal dashboard subscribed to one running "
                                "monitor, or to several (the fleet view)")
    p.add_argument("--connect", action="append", metavar="[NAME=]ENDPOINT",
                   help=f"a monitor's alert bus (default {DEFAULT_ENDPOINT}); repeat it "
                        "for the fleet view, one row per monitor, NAME naming its row")
    p.add_argument("--replay", action="append", metavar="ENDPOINT",
                   help="the monitor's replay endpoint, to heal missed detections "
                        "(e.g. tcp://127.0.0.1:5557); once per --connect, in its order")
    p.add_argument("--fleet", type=Path, metavar="FILE",
                   help="a TOML file whose [fleet.NAME] tables name the monitors to watch "
                        "(connect, replay, server_key, client_key)")
    p.add_argument("--channel", type=int, default=0, metavar="N",
                   help="channel shown in the spectrogram (0-based; one monitor)")
    p.add_argument("--no-bell", action="store_true", help="no terminal bell on an alarm")
    p.add_argument("--duration", type=float, default=None, help="quit after this many seconds")
    p.add_argument("--server-key", type=Path, action="append", metavar="FILE",
                   help="CURVE: the monitor's public certificate (.key); once for all "
                        "monitors or once per --connect")
    p.add_argument("--client-key", type=Path, metavar="FILE",
                   help="CURVE: this client's secret certificate (.key_secret)")
    p.add_argument("--operator", default=None, metavar="NAME",
                   help="who gives the verdicts, on a monitor without CURVE (default: your "
                        "login name; with CURVE the monitor names you by your key)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``pamlive dashboard [--connect [NAME=]ENDPOINT]... [--replay ENDPOINT]... [--fleet
    FILE] [--channel N]``: one monitor, or with several (or ``--fleet``) the fleet view."""
    args = _parser().parse_args(argv)
    if args.fleet is not None and (args.connect or args.replay or args.server_key
                                   or args.client_key):
        raise ConfigError("dashboard: --fleet names the stations and their keys; "
                          "give it without --connect, --replay or the keys")
    stations = (stations_from_toml(args.fleet) if args.fleet is not None else
                stations_from_args(args.connect, args.replay, args.server_key, args.client_key))
    if args.fleet is None and len(stations) == 1:
        only = stations[0]
        return run_dashboard(only.endpoint, replay_endpoint=only.replay, channel=args.channel,
                             duration_s=args.duration, bell=not args.no_bell,
                             curve_server_key=only.server_key,
                             curve_client_keypair=only.client_keypair,
                             operator=args.operator or _login())
    return run_fleet(stations, duration_s=args.duration, bell=not args.no_bell,
                     operator=args.operator or _login())


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return None
