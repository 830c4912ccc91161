"""Soak: 100,000 detections flat out, a subscriber killed and restarted every few seconds.

The monitor is ``python -m pamlive.alerts.simulate --rate 0`` (a real AlertBus in its own
process, publishing as fast as its publisher thread sustains). The subscriber is this
script in ``--subscriber`` mode: an AlertClient that appends each detection to a file and
is SIGKILLed after 2-4 s, then restarted with ``resume_after`` = the last line it wrote.
At the end the file must equal the durable log: zero lost, zero duplicated, in order.

    python benchmarks/bench_alert_soak.py [--count 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pamlive.alerts.log import read_all
from pamlive.alerts.simulate import spawn


def subscriber(args: argparse.Namespace) -> int:
    from pamlive.alerts.client import AlertClient

    resume = None
    if args.resume:
        run_id, seq = args.resume.rsplit(":", 1)
        resume = (run_id, int(seq))
    client = AlertClient(args.publish, replay_endpoint=args.replay, resume_after=resume)
    with open(args.out, "a", buffering=1) as out:
        while True:
            for event in client.poll(100):
                if event.kind in ("message", "replayed") and event.topic.startswith("detection."):
                    out.write(f"{event.body['run_id']} {event.body['seq']} {event.kind}\n")
                elif event.kind in ("gap", "malformed"):
                    out.write(f"! {event.kind} {event.error}\n")


def _read_lines(path: Path) -> list[list[str]]:
    """Complete lines only: a SIGKILL may cut the last one short."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [line.split(" ", 2) for line in complete.splitlines()]


def _resume_arg(lines: list[list[str]]) -> list[str]:
    for parts in reversed(lines):
        if parts[0] != "!":
            return ["--resume", f"{parts[0]}:{parts[1]}"]
    return []


def soak(count: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="pamlive-soak-"))
    out = work / "received.txt"
    monitor, ready = spawn(
        ["--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*",
         "--log", str(work / "log.db"), "--rate", "0", "--count", str(count),
         "--linger-s", "3600"]
    )  # fmt: skip
    rng = random.Random(1)
    restarts, t0 = 0, time.monotonic()
    while True:
        lines = _read_lines(out)
        received = sum(1 for p in lines if p[0] != "!")
        if received >= count or time.monotonic() - t0 > 1200:
            break
        sub = subprocess.Popen(
            [sys.executable, __file__, "--subscriber", "--publish", ready["publish"],
             "--replay", ready["replay"], "--out", str(out), *_resume_arg(lines)]
        )  # fmt: skip
        time.sleep(rng.uniform(2.0, 4.0))
        sub.send_signal(signal.SIGKILL)
        sub.wait()
        restarts += 1
    monitor.send_signal(signal.SIGTERM)
    done = json.loads(monitor.communicate(timeout=60)[0].strip().splitlines()[-1])

    lines = _read_lines(out)
    problems = [p for p in lines if p[0] == "!"]
    got = [(p[0], int(p[1])) for p in lines if p[0] != "!"]
    logged = [(b["run_id"], b["seq"]) for b in read_all(work / "log.db")]
    kinds = [p[2] for p in lines if p[0] != "!"]
    stats = done["stats"]
    print(f"detections published:  {done['count']} in {done['elapsed_s']:.2f} s")
    print(f"publish rate:          {done['count'] / done['elapsed_s']:.0f} detections/s")
    print(
        f"log commit (batch):    median {stats['log_commit_ms']['median']:.2f} ms, "
        f"p95 {stats['log_commit_ms']['p95']:.2f} ms"
    )
    print(
        f"queue-to-send latency: median {stats['latency_ms']['median']:.1f} ms, "
        f"p95 {stats['latency_ms']['p95']:.1f} ms (flat-out load, last 1000)"
    )
    print(f"drops in the bus:      {stats['dropped']}")
    print(f"subscriber restarts:   {restarts} (SIGKILL every 2-4 s)")
    print(
        f"received:              {len(got)} ({kinds.count('message')} live, "
        f"{kinds.count('replayed')} replayed)"
    )
    print(f"lost:                  {len(set(logged) - set(got))}")
    print(f"duplicated:            {len(got) - len(set(got))}")
    print(f"in log order:          {got == logged}")
    print(f"gap/malformed events:  {len(problems)}")
    ok = got == logged and len(logged) == count and not problems
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--publish", help=argparse.SUPPRESS)
    p.add_argument("--replay", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--resume", help=argparse.SUPPRESS)
    args = p.parse_args()
    return subscriber(args) if args.subscriber else soak(args.count)


if __name__ == "__main__":
    sys.exit(main())
