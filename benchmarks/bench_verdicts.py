"""What validation costs a monitor: a verdict's round trip, and reading the log at start.

Fills a detection log with ``--detections`` detections (the real writer), starts a real
bus on it (the start reads every detection and verdict back into the ``VerdictStore``:
timed), then sends ``--verdicts`` verdicts over loopback ZeroMQ, each logged (fsync) and
published before its answer comes, and prints the round trip's median and p95.

    python benchmarks/bench_verdicts.py --detections 100000 --verdicts 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.log import DetectionLog, LoggedDetection
from pamlive.alerts.operator import VerdictConnection, send_verdict
from pamlive.alerts.schema import detection_body


def fill_log(path: Path, n: int) -> list[str]:
    """``n`` detections of one earlier run, as a monitor logs them; returns their ids."""
    log = DetectionLog(path)
    log.start_run("R0", "bench")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows, ids = [], []
    for k in range(n):
        body = detection_body(run_id="R0", station="bench", class_name="right_whale",
                              score=0.99, scores={"right_whale": 0.99}, channels=[0],
                              start_sample=k * 20_000, end_sample=k * 20_000 + 4000,
                              sample_rate=2000, stream_start_utc=start, model_name="m",
                              model_version="1")
        body.update(seq=k + 1, latency_ms=1.0)
        rows.append(LoggedDetection(k + 1, start.timestamp() + k * 10.0, json.dumps(body)))
        ids.append(body["id"])
    for first in range(0, n, 10_000):
        log.append(rows[first:first + 10_000])
    log.end_run("duration")
    log.close()
    return ids


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detections", type=int, default=100_000)
    p.add_argument("--verdicts", type=int, default=200)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.db"
        ids = fill_log(path, args.detections)
        t0 = time.perf_counter()
        bus = AlertBus("tcp://127.0.0.1:*", station="bench", log_path=path,
                       replay_endpoint="tcp://127.0.0.1:*")
        bus.start()
        start_s = time.perf_counter() - t0
        trips = []
        with VerdictConnection(bus.replay_endpoint) as monitor:
            for k in range(args.verdicts):
                t = time.perf_counter()
                send_verdict(monitor, ids[(k * 7919) % len(ids)], "confirmed", operator="b")
                trips.append((time.perf_counter() - t) * 1000.0)
        stats = bus.verdicts.stats(time.time())
        bus.close()
    print(f"bus start on a log of {args.detections} detections (read into the store): "
          f"{start_s:.2f} s; waiting {stats['waiting']}, verdicts {stats['verdicts']}")
    print(f"verdict round trip over {args.verdicts}: median {np.median(trips):.1f} ms, "
          f"p95 {np.percentile(trips, 95):.1f} ms")


if __name__ == "__main__":
    main()
