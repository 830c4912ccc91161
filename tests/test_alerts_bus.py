"""Issue 5 acceptance with real sockets and real processes.

The monitor side is ``python -m pamlive.alerts.simulate`` (a real AlertBus in its own
process, killable with SIGKILL); the subscriber side is ``pamlive.alerts.client.AlertClient``.
The durable log, read back with SQLite, is the independent record of what was published.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import time

import pytest
import zmq

from pamlive.alerts.client import AlertClient
from pamlive.alerts.log import read_all
from pamlive.alerts.simulate import spawn

LOCAL = "tcp://127.0.0.1:*"


def _sim(tmp_path, *args):
    return spawn(["--publish", LOCAL, "--replay", LOCAL, "--log", str(tmp_path / "log.db"), *args])


def _detections(events):
    return [e.body for e in events if e.kind in ("message", "replayed") and e.topic[:4] == "dete"]


def _poll_until(client, done, timeout_s):
    events, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done(events):
        events += client.poll(100)
    return events


def _finish(proc) -> dict:
    """Stop a simulator politely and return its ``done`` line."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    return json.loads(out.strip().splitlines()[-1])


def _keys(bodies):
    return [(b["run_id"], b["seq"]) for b in bodies]


@pytest.mark.slow
def test_subscriber_down_while_detections_happen_gets_every_detection_back_in_order(tmp_path):
    # The point is "down while the monitor keeps detecting": 8 s at 20/s is 160 detections
    # only the replay brings back, one page of the durable log as 30 s (600) was.
    rate, down_s = 20, 8
    count = rate * (3 + down_s + 3)  # 3 s up, down_s down, 3 s up again
    proc, ready = _sim(tmp_path, "--rate", str(rate), "--count", str(count), "--linger-s", "30")
    first = AlertClient(ready["publish"], replay_endpoint=ready["replay"])
    before = _detections(_poll_until(first, lambda ev: False, 3.0))
    resume_at = first.position
    first.close()
    assert before and resume_at == _keys(before)[-1]
    time.sleep(down_s)  # the subscriber is down; the monitor keeps detecting
    second = AlertClient(ready["publish"], replay_endpoint=ready["replay"], resume_after=resume_at)
    missing = count - len(before)
    events = _poll_until(second, lambda ev: len(_detections(ev)) >= missing, 20)
    second.close()
    after = _detections(events)
    done = _finish(proc)
    logged = read_all(tmp_path / "log.db")
    assert done["count"] == count == len(logged)
    assert _keys(before + after) == _keys(logged)  # all, in order, no duplicates
    assert before + after == logged  # and exactly the published bodies
    healed = [e.kind for e in events if e.kind in ("replayed", "message")]
    assert healed.count("replayed") >= down_s * rate * 0.9  # the outage came from replay
    assert "message" in healed  # and the live stream resumed after it


@pytest.mark.slow
def test_kill_9_mid_run_loses_nothing_and_restart_heals_across_runs(tmp_path):
    proc, ready = _sim(tmp_path, "--rate", "300", "--heartbeat-s", "0.2")
    client = AlertClient(ready["publish"], replay_endpoint=ready["replay"], lost_after_s=1.0)
    events = _poll_until(client, lambda ev: len(_detections(ev)) >= 300, 10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    seen_before_kill = _detections(events)
    logged = read_all(tmp_path / "log.db")
    with sqlite3.connect(tmp_path / "log.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    logged_by_key = {(b["run_id"], b["seq"]): b for b in logged}
    assert len(seen_before_kill) >= 300
    assert all(
        logged_by_key[k] == b
        for k, b in zip(_keys(seen_before_kill), seen_before_kill, strict=True)
    )

    events += _poll_until(client, lambda ev: ev and ev[-1].kind == "lost", 5)
    assert events[-1].kind == "lost"
    # Restart on the same endpoints and log: a new run; the client heals across both.
    proc2, ready2 = spawn(
        [
            "--publish",
            ready["publish"],
            "--replay",
            ready["replay"],
            "--log",
            str(tmp_path / "log.db"),
            "--rate",
            "300",
            "--count",
            "60",
            "--heartbeat-s",
            "0.2",
            "--linger-s",
            "30",
        ]
    )
    assert ready2["run_id"] != ready["run_id"]
    events += _poll_until(
        client,
        lambda ev: sum(b["run_id"] == ready2["run_id"] for b in _detections(ev)) >= 60,
        15,
    )
    client.close()
    _finish(proc2)
    kinds = [e.kind for e in events]
    assert "recovered" in kinds
    assert _detections(events) == read_all(tmp_path / "log.db")


def test_replay_socket_survives_fuzzing_and_keeps_serving(tmp_path):
    proc, ready = _sim(tmp_path, "--rate", "50", "--heartbeat-s", "0.2")
    rng = random.Random(5)
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(ready["replay"])
    junk_json = [
        b'{"limit": "all"}',
        b"[]",
        b"null",
        b'{"after": 1}',
        b'{"limit": 1e999}',
        b'{"since_utc": 12}',
        b'{"until": {"run_id": "", "seq": 1}}',
        b'"\\ud800"',
    ]
    bad = 0
    for i in range(300):
        shape = i % 4
        if shape == 0:
            frames = [rng.randbytes(rng.randint(0, 2000))]
        elif shape == 1:
            frames = [rng.choice(junk_json)]
        elif shape == 2:
            frames = [rng.randbytes(rng.randint(0, 50)) for _ in range(rng.randint(2, 5))]
        else:
            frames = [b"x" * rng.randint(65 * 1024, 500 * 1024)]
        dealer.send_multipart(frames)
        assert dealer.poll(5000), f"no reply to fuzz case {i}"
        reply = json.loads(dealer.recv_multipart()[-1])
        assert reply["ok"] is False and reply["error"], (i, frames[:3], reply)
        bad += 1
    # REQ peers (envelope frames) and over-limit frames that libzmq itself drops.
    req = context.socket(zmq.REQ)
    req.connect(ready["replay"])
    req.send(b"\x00\xff")
    assert req.poll(5000) and json.loads(req.recv())["code"] == "bad_request"
    bad += 1
    greedy = context.socket(zmq.DEALER)
    greedy.connect(ready["replay"])
    greedy.send(b"y" * (2 * 1024 * 1024))
    assert not greedy.poll(500)  # peer dropped, nothing served
    for s in (dealer, req, greedy):
        s.close(linger=0)
    context.term()

    assert proc.poll() is None
    client = AlertClient(ready["publish"], replay_endpoint=ready["replay"])
    events = _poll_until(client, lambda ev: any(e.kind == "replayed" for e in ev), 10)
    assert any(e.kind == "replayed" for e in events)  # late join healed: replay still serves
    client.close()
    done = _finish(proc)
    assert done["stats"]["replay"]["errors"] == bad
