"""Alert latency with and without bearings, side by side (issue 15).

Runs the live demo (simulated 4-element square, built-in model) twice on the same seed,
without ``[array]`` and with it (bearings + k-of-n), alternating, and prints the median
and p95 of the published detections' ``latency_ms`` and when the bearings followed.

    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_bearing_latency.py [--duration 30]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from pamlive.app import run_demo
from pamlive.config import load_config

SQUARE = [[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [40.0, 40.0]]


def _collect(endpoint: str, stop: threading.Event, out: list) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.subscribe(b"")
    sock.connect(endpoint)
    while not stop.is_set():
        if sock.poll(50):
            topic, body = sock.recv_multipart()
            out.append((time.monotonic(), topic.decode(), json.loads(body)))
    sock.close(linger=0)
    ctx.term()


def _run(array: bool, duration: float, speed: float) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{tmp}/pub"
        overrides = {
            "data_dir": str(Path(tmp) / "data"), "source.kind": "simulator",
            "source.speed": speed, "simulator.call_interval_s": 6.0,
            "simulator.snr_db_range": [8.0, 25.0], "simulator.seed": 2013,
            "simulator.geometry": SQUARE, "alerts.publish": endpoint,
            "alerts.replay": f"ipc://{tmp}/replay",
        }
        if array:
            overrides["array"] = {"positions": SQUARE, "min_channels": {"right_whale": 2}}
        cfg = load_config(None, overrides)
        got: list = []
        stop = threading.Event()
        t = threading.Thread(target=_collect, args=(endpoint, stop, got))
        t.start()
        time.sleep(0.3)
        run_demo(cfg, headless=True, duration_s=duration, stop_event=threading.Event())
        time.sleep(0.5)
        stop.set()
        t.join()
    alerts = {b["start_sample"]: (at, b["latency_ms"]) for at, topic, b in got
              if topic.startswith("detection.")}
    after = [1000.0 * (at - alerts[b["start_sample"]][0]) for at, topic, b in got
             if topic.startswith("bearing.") and b["start_sample"] in alerts]
    return [lat for _, lat in alerts.values()], after


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0, help="wall seconds per run")
    ap.add_argument("--speed", type=float, default=4.0, help="simulator pace (x real time)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    lat: dict[bool, list[float]] = {False: [], True: []}
    follow: list[float] = []
    for _ in range(args.rounds):
        for array in (False, True):
            alerts, after = _run(array, args.duration, args.speed)
            lat[array] += alerts
            follow += after
    for array in (False, True):
        v = lat[array]
        print(f"{'with' if array else 'without'} [array]: {len(v)} alerts, latency median "
              f"{np.median(v):.1f} ms, p95 {np.percentile(v, 95):.1f} ms")
    print(f"ratio of medians (with / without): {np.median(lat[True]) / np.median(lat[False]):.2f}")
    if follow:
        print(f"bearing message after its alert: median {np.median(follow):.0f} ms, "
              f"p95 {np.percentile(follow, 95):.0f} ms ({len(follow)} bearings)")


if __name__ == "__main__":
    main()
