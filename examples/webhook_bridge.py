"""Forward pamlive alerts to an HTTP webhook (standard library only).

Every onset (a call has begun: the early alert) and every detection (the call, closed;
same ``id`` as its onset), live or healed through replay, is POSTed as the bus's JSON
body (``schema`` tells them apart), and
the monitor's state as ``{"event": "stopped"|"lost"|"recovered", ...}``: ``stopped`` is a
clean stop (``detail.reason`` says why: ``sigterm``, ``end_of_input`` ...), ``lost`` a
monitor gone silent without a goodbye (killed, hung, link down). The bridge keeps
its place in ``--state``, so a restarted bridge misses nothing; a detection posted just
before a crash may be posted again (at-least-once: receivers de-duplicate by run_id, seq).

    python examples/webhook_bridge.py https://example.org/hook \
        --publish tcp://127.0.0.1:5556 --replay tcp://127.0.0.1:5557
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from pamlive.alerts.client import AlertClient


def post(url: str, payload: dict, attempts: int = 5) -> None:
    """POST JSON, retrying with back-off: a detection must not be dropped on a hiccup."""
    data = json.dumps(payload).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10):
                return
        except (urllib.error.URLError, TimeoutError):
            time.sleep(2**attempt)
    raise RuntimeError(f"webhook {url} unreachable after {attempts} attempts")


def save_state(path: Path, position: object) -> None:
    """Replace the state file at once: a kill mid-write must not leave it empty."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(position))
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--publish", default="tcp://127.0.0.1:5556")
    p.add_argument("--replay", default="tcp://127.0.0.1:5557")
    p.add_argument("--state", type=Path, default=Path("webhook_bridge.state"))
    p.add_argument("--lost-after-s", type=float, default=5.0,
                   help="silence (without a goodbye) after which the monitor is lost")
    args = p.parse_args()
    resume = tuple(json.loads(args.state.read_text())) if args.state.exists() else None
    client = AlertClient(args.publish, replay_endpoint=args.replay, resume_after=resume,
                         lost_after_s=args.lost_after_s)
    while True:
        for event in client.poll(500):
            if event.alert is not None:  # "onset", "detection", "bearing" ([array]) ...
                post(args.url, event.body)
                save_state(args.state, event.position)  # this alert's, not the newest's
            elif event.liveness is not None or event.kind == "gap":
                post(args.url, {"event": event.kind, "detail": event.body, "error": event.error})


if __name__ == "__main__":
    main()
