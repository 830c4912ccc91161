"""``pamlive sink webhook|mqtt|serial``: forward a monitor's alerts, resuming where it left.

Each sink is its own process subscribed to the bus (docs/alerts.md, "Sinks"): it heals
gaps through replay, forwards the monitor's state, and keeps its place in ``--state``,
so a restarted sink misses nothing (at-least-once: the alert in flight at a kill may come
twice). SIGTERM or SIGINT stop it between two alerts.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from pamlive.alerts.client import AlertClient
from pamlive.errors import ConfigError
from pamlive.sinks.base import Sink, forward
from pamlive.sinks.serial_line import BAUD_RATES
from pamlive.sinks.state import ResumeState
from pamlive.sinks.validated import ValidatedOnly
from pamlive.stop import SIGNALS, Stop


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pamlive sink", description=__doc__.splitlines()[0])
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    webhook = kinds.add_parser("webhook", help="POST each alert's JSON to a URL")
    webhook.add_argument("url")
    mqtt = kinds.add_parser("mqtt", help="publish to an MQTT broker (pamlive[bridges])")
    mqtt.add_argument("--broker", default="localhost")
    mqtt.add_argument("--port", type=int, default=1883)
    mqtt.add_argument("--prefix", default="pamlive", help="topic prefix")
    serial = kinds.add_parser("serial", help="one NMEA-style sentence per alert on a "
                              "serial line")
    serial.add_argument("--device", required=True, help="serial device, e.g. /dev/ttyUSB0")
    serial.add_argument("--baud", type=int, default=4800, choices=BAUD_RATES)
    for name, sub in kinds.choices.items():
        sub.add_argument("--publish", default="tcp://127.0.0.1:5556",
                         help="the monitor's alert bus")
        sub.add_argument("--replay", default="tcp://127.0.0.1:5557",
                         help="the monitor's replay server (heals missed alerts)")
        sub.add_argument("--state", type=Path, default=Path(f"{name}_sink.state"),
                         help="where the sink keeps its place (default: %(default)s)")
        sub.add_argument("--lost-after-s", type=float, default=5.0,
                         help="silence (without a goodbye) after which the monitor is lost")
        sub.add_argument("--validated-only", action="store_true",
                         help="forward only detections an operator confirmed (each with its "
                              "verdict), when the verdict comes")
    return p


def _open_sink(args: argparse.Namespace) -> Sink:
    if args.kind == "webhook":
        from pamlive.sinks.webhook import WebhookSink

        return WebhookSink(args.url)
    if args.kind == "mqtt":
        try:
            from pamlive.sinks.mqtt import MqttSink
        except ImportError as e:  # paho-mqtt: an optional dependency
            raise ConfigError("the MQTT sink needs paho-mqtt: pip install 'pamlive[bridges]'"
                              ) from e
        return MqttSink(args.broker, args.port, args.prefix)
    from pamlive.sinks.serial_line import SerialSink

    return SerialSink(args.device, args.baud)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = Stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _: stop.request(SIGNALS[signum]))
    state = ResumeState(args.state)
    resume = state.load()
    sink = _open_sink(args)
    if args.validated_only:
        sink = ValidatedOnly(sink)
    try:
        with AlertClient(args.publish, replay_endpoint=args.replay, resume_after=resume,
                         lost_after_s=args.lost_after_s) as client:
            forward(sink, client, state, stop)
    finally:
        sink.close()
    return 0
