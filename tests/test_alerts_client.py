"""AlertClient against a scripted monitor: exact control of which messages get lost.

The scripted monitor is a real PUB socket plus the real replay server over a real log;
it only lets each test choose which sequence numbers reach the subscriber.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import zmq

from pamlive.alerts.client import AlertClient
from pamlive.alerts.log import DetectionLog, LoggedDetection, LogReader
from pamlive.alerts.replay import ReplayServer
from pamlive.alerts.schema import detection_body, parse_utc

T0 = datetime(2026, 2, 1, tzinfo=UTC)


class ScriptedMonitor:
    def __init__(self, tmp_path, run_id="run-A"):
        self.context = zmq.Context()
        self.pub = self.context.socket(zmq.PUB)
        self.pub.linger = 0
        self.endpoint = f"tcp://127.0.0.1:{self.pub.bind_to_random_port('tcp://127.0.0.1')}"
        self.log_path = tmp_path / "log.db"
        self.log = DetectionLog(self.log_path)
        self.new_run(run_id)
        router = self.context.socket(zmq.ROUTER)
        router.linger = 0
        port = router.bind_to_random_port("tcp://127.0.0.1")
        self.replay_endpoint = f"tcp://127.0.0.1:{port}"
        self.replay = ReplayServer(router, LogReader(self.log_path))
        self.replay.start()

    def new_run(self, run_id):
        self.run_id = run_id
        self.log.start_run(run_id, "st")

    def detection(self, seq, start_s=None):
        body = detection_body(
            run_id=self.run_id,
            station="st",
            class_name="right_whale",
            score=0.8,
            scores={"right_whale": 0.8},
            channels=[1],
            start_sample=int((seq if start_s is None else start_s) * 1000),
            end_sample=int((seq if start_s is None else start_s) * 1000) + 2000,
            sample_rate=1000,
            stream_start_utc=T0,
            model_name="m",
            model_version="1",
        )
        body.update(seq=seq, latency_ms=5.0)
        return body

    def log_detections(self, bodies):
        self.log.append(
            LoggedDetection(b["seq"], parse_utc(b["start_utc"]).timestamp(), json.dumps(b))
            for b in bodies
        )

    def send(self, body):
        topic = "detection.right_whale" if "class" in body else "heartbeat"
        self.pub.send_multipart([topic.encode(), json.dumps(body).encode()])

    def heartbeat(self, seq):
        return {"schema": "pamlive.heartbeat/1", "run_id": self.run_id, "seq": seq}

    def close(self):
        self.replay.stop()
        self.log.close()
        self.pub.close()
        self.context.term()


@pytest.fixture
def monitor(tmp_path):
    m = ScriptedMonitor(tmp_path)
    yield m
    m.close()


def _connect(monitor, **kwargs) -> tuple[AlertClient, int]:
    """A client that has seen a first heartbeat; returns it and the next free seq."""
    kwargs.setdefault("replay_endpoint", monitor.replay_endpoint)
    client = AlertClient(monitor.endpoint, **kwargs)
    for seq in range(1, 200):
        monitor.send(monitor.heartbeat(seq))
        if client.poll(50):
            return client, seq + 1
    raise AssertionError("subscriber never connected")


def _collect(client, until, timeout_s=5.0):
    events, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(events):
        events += client.poll(50)
    return events


def _detections(events):
    return [(e.kind, e.body["run_id"], e.body["seq"]) for e in events if e.topic.startswith("det")]


def test_gaps_are_healed_in_order_without_duplicates(monitor):
    client, s = _connect(monitor)
    det_seqs = [s + i for i in (0, 1, 2, 4, 5, 7, 8, 9)]  # heartbeats at s+3, s+6, s+10
    dets = {q: monitor.detection(q) for q in det_seqs}
    monitor.log_detections(dets.values())
    for q in (s, s + 1, s + 6, s + 8, s + 1, s + 10):  # s+1 resent late: a duplicate
        monitor.send(dets.get(q) or monitor.heartbeat(q))
    events = _collect(client, lambda ev: any(e.body and e.body["seq"] == s + 10 for e in ev))
    expected_kinds = {s: "message", s + 1: "message", s + 8: "message"}
    assert _detections(events) == [
        (expected_kinds.get(q, "replayed"), "run-A", q) for q in det_seqs
    ]
    assert all(e.body == dets[e.body["seq"]] for e in events if e.topic.startswith("det"))
    assert client.position == ("run-A", s + 9)
    client.close()


def test_resuming_from_an_events_position_skips_nothing_of_its_batch(monitor):
    """A poll can hand out several alerts at once; a process that acted on the first and
    was then killed must resume after *that* one. Storing ``client.position`` (the newest
    handed out) skipped the rest of the batch: the webhook bridge lost an alert so."""
    client, s = _connect(monitor)
    dets = [monitor.detection(s + i) for i in range(3)]
    monitor.log_detections(dets)
    for body in dets:
        monitor.send(body)
    events = _collect(client, lambda ev: len(_detections(ev)) == 3)
    batch = [e for e in events if e.alert == "detection"]
    assert [e.position for e in batch] == [("run-A", s + i) for i in range(3)]
    assert client.position == ("run-A", s + 2)  # ahead of the first two
    assert all(e.position is None for e in events if e.alert is None)
    client.close()
    resumed = AlertClient(monitor.endpoint, replay_endpoint=monitor.replay_endpoint,
                          resume_after=batch[0].position)
    got: list = []
    for seq in range(s + 3, s + 200):  # it first hears the monitor at some later seq
        monitor.send(monitor.heartbeat(seq))
        got += resumed.poll(20)
        if any(e.topic == "heartbeat" for e in got):
            break
    assert _detections(got) == [("replayed", "run-A", s + 1), ("replayed", "run-A", s + 2)]
    resumed.close()


def test_monitor_restart_heals_the_old_runs_tail_and_the_new_runs_start(monitor):
    client, s = _connect(monitor)
    monitor.log_detections([monitor.detection(s), monitor.detection(s + 1)])
    monitor.send(monitor.detection(s))  # s+1 never sent: the monitor died
    monitor.new_run("run-B")
    monitor.log_detections([monitor.detection(1), monitor.detection(2)])
    monitor.send(monitor.heartbeat(3))
    events = _collect(client, lambda ev: len(_detections(ev)) == 4)
    assert _detections(events) == [
        ("message", "run-A", s),
        ("replayed", "run-A", s + 1),
        ("replayed", "run-B", 1),
        ("replayed", "run-B", 2),
    ]
    client.close()


def test_resume_and_since_replay_what_a_new_subscriber_asks_for(monitor):
    monitor.log_detections([monitor.detection(q, start_s=10 * q) for q in (1, 2, 3)])
    clients = {
        "resumed": AlertClient(
            monitor.endpoint, replay_endpoint=monitor.replay_endpoint, resume_after=("run-A", 1)
        ),
        "since": AlertClient(
            monitor.endpoint,
            replay_endpoint=monitor.replay_endpoint,
            since_utc=T0 + timedelta(seconds=25),
        ),
    }
    got = {name: [] for name in clients}
    for seq in range(500, 700):  # both first hear the monitor at some seq > 3
        monitor.send(monitor.heartbeat(seq))
        for name, client in clients.items():
            got[name] += client.poll(20)
        if all(any(e.topic == "heartbeat" for e in ev) for ev in got.values()):
            break
    assert _detections(got["resumed"]) == [("replayed", "run-A", 2), ("replayed", "run-A", 3)]
    assert _detections(got["since"]) == [("replayed", "run-A", 3)]
    for client in clients.values():
        client.close()


def test_malformed_messages_become_events_and_the_stream_goes_on(monitor):
    client, s = _connect(monitor)
    bad_detection = monitor.detection(s + 3)
    bad_detection["score"] = "high"
    for frames in (
        [b"heartbeat"],
        [b"heartbeat", b"{not json", b"extra"],
        [b"heartbeat", b"{not json"],
        [b"heartbeat", b'{"run_id": "run-A"}'],
        ["detection.\u00e9".encode(), b"{}"],
        [b"detection.right_whale", json.dumps(bad_detection).encode()],
    ):
        monitor.pub.send_multipart(frames)
    monitor.send(monitor.heartbeat(s + 4))
    events = _collect(client, lambda ev: any(e.kind == "message" for e in ev))
    kinds = [e.kind for e in events]
    assert kinds == ["malformed"] * 6 + ["message"], [(e.kind, e.error) for e in events]
    assert "'score'" in events[5].error
    assert "frames" in events[0].error
    client.close()


def test_silence_is_reported_lost_then_recovered(monitor):
    client, s = _connect(monitor, lost_after_s=0.4)
    events = _collect(client, lambda ev: ev, timeout_s=2.0)
    assert [e.kind for e in events] == ["lost"]
    assert events[0].body["silent_s"] > 0.4
    assert client.poll(300) == []  # lost is reported once, not on every poll
    monitor.send(monitor.heartbeat(s))
    events = _collect(client, lambda ev: ev)
    assert [e.kind for e in events] == ["recovered", "message"]
    client.close()


def test_a_goodbye_is_reported_stopped_not_lost(monitor):
    client, s = _connect(monitor, lost_after_s=0.4)
    monitor.send({**monitor.heartbeat(s), "schema": "pamlive.health/1", "final": True,
                  "stop_reason": "sigterm"})
    events = _collect(client, lambda ev: ev)
    assert [e.kind for e in events] == ["message", "stopped"]
    assert events[1].body == {"run_id": "run-A", "reason": "sigterm"}
    assert events[1].liveness == "stopped"
    # the silence that follows a goodbye is no loss, however long
    silence = _collect(client, lambda ev: False, timeout_s=1.2)
    assert [e.kind for e in silence] == []
    monitor.send(monitor.heartbeat(s + 1))  # the stopped run's last heartbeat: still stopped
    assert [e.kind for e in _collect(client, lambda ev: ev)] == ["message"]
    monitor.new_run("run-B")  # the monitor starts again
    monitor.send(monitor.heartbeat(1))
    events = _collect(client, lambda ev: ev)
    assert [e.kind for e in events] == ["recovered", "message"]
    assert events[0].liveness == "ok"
    # and a new run that dies without a goodbye is lost again
    events = _collect(client, lambda ev: ev, timeout_s=2.0)
    assert [(e.kind, e.liveness) for e in events] == [("lost", "lost")]
    client.close()


def test_without_replay_a_gap_is_reported_not_hidden(monitor):
    client, s = _connect(monitor, replay_endpoint=None)
    monitor.send(monitor.heartbeat(s + 5))
    events = _collect(client, lambda ev: ev)
    assert [e.kind for e in events] == ["gap", "message"]
    assert events[0].body["after"] == ("run-A", s - 1)
    client.close()


def test_a_garbage_replay_reply_is_a_gap_not_a_crash(monitor):
    router = monitor.context.socket(zmq.ROUTER)
    router.linger = 0
    endpoint = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"

    stop = threading.Event()

    def serve_garbage():
        while not stop.is_set():
            if router.poll(50):
                identity, request = router.recv_multipart()
                reply = {"ok": True, "id": json.loads(request)["id"], "detections": [1, "x"]}
                router.send_multipart([identity, json.dumps(reply).encode()])

    server = threading.Thread(target=serve_garbage)
    server.start()
    client, s = _connect(monitor, replay_endpoint=endpoint)
    monitor.send(monitor.heartbeat(s + 3))
    events = _collect(client, lambda ev: ev)
    stop.set()
    server.join()
    assert [(e.kind, e.error) for e in events] == [
        ("gap", "replay: malformed reply"),
        ("message", None),
    ]
    client.close()
    router.close()


def test_random_frames_never_raise(monitor):
    client, s = _connect(monitor)
    rng = random.Random(11)
    envelope = {"run_id": "run-A", "seq": s}
    shapes = [
        lambda: [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 4))],
        lambda: [b"detection.rw", json.dumps({**envelope, "class": rng.random()}).encode()],
        lambda: [b"heartbeat", json.dumps({"run_id": rng.random(), "seq": "1"}).encode()],
        lambda: [b"detection.x", json.dumps({**envelope, "seq": rng.randint(1, 2**70)}).encode()],
        lambda: [b"heartbeat", b"[" * 5000],
        lambda: [b"health", b"NaN"],
    ]
    for _ in range(300):
        monitor.pub.send_multipart(rng.choice(shapes)())
    monitor.send(monitor.heartbeat(10**6))
    kinds: set[str] = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "message" not in kinds:
        kinds |= {e.kind for e in client.poll(50)}
    assert "malformed" in kinds and "message" in kinds
    assert kinds <= {"malformed", "message", "replayed", "gap"}
    client.close()
