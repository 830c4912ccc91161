"""Synthetic detections on a real alert bus, to exercise subscribers without audio.

Used by the bus tests and the soak benchmark (as a real, killable process), and handy
for trying a bridge or dashboard: ``python -m pamlive.alerts.simulate --rate 2``.
Prints one JSON line when bound (``ready``) and one when done.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.schema import detection_body, onset_body
from pamlive.stop import SIGNALS, Stop, StopReason

SAMPLE_RATE = 2000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pamlive.alerts.simulate", description=__doc__)
    p.add_argument("--publish", default="tcp://127.0.0.1:5556")
    p.add_argument("--replay", default=None)
    p.add_argument("--log", type=Path, default=None)
    p.add_argument("--station", default="sim")
    p.add_argument("--count", type=int, default=0, help="detections to publish (0 = forever)")
    p.add_argument("--rate", type=float, default=1.0, help="detections/s (0 = as fast as possible)")
    p.add_argument("--heartbeat-s", type=float, default=1.0)
    p.add_argument("--linger-s", type=float, default=0.0, help="keep the bus up after the last")
    p.add_argument("--curve-secret", type=Path, default=None)
    p.add_argument("--curve-clients", type=Path, default=None)
    p.add_argument("--operators", type=Path, default=None,
                   help="the .key files of the clients that may validate (with CURVE)")
    p.add_argument("--allow-insecure", action="store_true")
    p.add_argument("--onsets", action="store_true",
                   help="publish each detection's onset (its opening window) before it")
    return p


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def run(args: argparse.Namespace, stop: Stop) -> dict:
    alerts = {"publish": args.publish, "log": args.log, "replay": args.replay,
              "allow_insecure": args.allow_insecure, "curve_server_secret": args.curve_secret,
              "curve_clients": args.curve_clients if args.curve_secret else None,
              "operators": args.operators}
    bus = AlertBus.from_config(alerts, station=args.station, heartbeat_s=args.heartbeat_s)
    bus.start()
    _emit(ready=True, publish=bus.endpoint, replay=bus.replay_endpoint, run_id=bus.run_id)
    stream_start = datetime.now(UTC)
    t0 = time.monotonic()
    n = 0
    while not stop.is_set() and (args.count == 0 or n < args.count):
        if args.rate > 0:
            stop.wait(max(0.0, t0 + n / args.rate - time.monotonic()))
        elif bus.stats()["queue_fill"] > 0.5:  # flat out, but never overrun the queue
            time.sleep(0.001)
            continue
        start = n * SAMPLE_RATE
        fields = dict(
            run_id=bus.run_id,
            station=args.station,
            class_name="right_whale",
            score=0.9,
            scores={"noise": 0.1, "right_whale": 0.9},
            channels=[n % 4],
            start_sample=start,
            end_sample=start + 2 * SAMPLE_RATE,
            sample_rate=SAMPLE_RATE,
            stream_start_utc=stream_start,
            model_name="synthetic",
            model_version="0",
        )
        if args.onsets:
            bus.publish_onset(onset_body(**fields), ready_monotonic=time.monotonic())
        bus.publish_detection(detection_body(**fields), ready_monotonic=time.monotonic())
        n += 1
    elapsed = time.monotonic() - t0
    stop.wait(args.linger_s)
    bus.close(stop.reason or StopReason.END_OF_INPUT)  # its goodbye names why
    return {"count": n, "elapsed_s": elapsed, "stats": bus.stats()}


def spawn(argv: list[str], *, timeout_s: float = 15.0,
          stderr: IO[str] | None = None) -> tuple[subprocess.Popen, dict]:
    """Start the simulator as its own process; returns it and its ``ready`` line
    (``stderr``: where its log goes, default this process's)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pamlive.alerts.simulate", *argv],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    ready: list[dict] = []
    stdout = proc.stdout
    assert stdout is not None  # stdout=PIPE
    reader = threading.Thread(target=lambda: ready.append(json.loads(stdout.readline())))
    reader.start()
    reader.join(timeout_s)
    if not ready or not ready[0].get("ready"):
        proc.kill()
        raise RuntimeError(f"simulator did not start (exit code {proc.poll()})")
    return proc, ready[0]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = Stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _: stop.request(SIGNALS[signum]))
    _emit(done=True, **run(args, stop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
