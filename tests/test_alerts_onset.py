"""Onset alerts (issue 12): published as a detection opens, logged first, replayable,
healed by the client, and sharing an id with the closed detection."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pytest
import zmq
from test_monitor import (  # noqa: F401
    TUTORIAL_THRESHOLD_TABLE,
    TUTORIAL_THRESHOLDS,
    Subscriber,
    analyze_detections,
    model,
    tutorial,
    write_config,
)

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.client import AlertClient
from pamlive.alerts.latency import LatencyTracker
from pamlive.alerts.log import LogReader, read_all
from pamlive.alerts.replay import ReplayServer, error_reply
from pamlive.alerts.schema import (
    alert_id,
    detection_body,
    onset_body,
    validate_detection,
    validate_onset,
)
from pamlive.app import run_monitor
from pamlive.config import data_path, load_config
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import load_model_package
from pamlive.pipeline import classify_windows, make_merger
from pamlive.windows import Windower

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
BOTH = ("detection", "onset")


def _fields(run_id: str, start: int, **over) -> dict:
    return dict(run_id=run_id, station="st", class_name="right_whale", score=0.95,
                scores={"noise": 0.05, "right_whale": 0.95}, channels=[0], start_sample=start,
                end_sample=start + 4000, sample_rate=2000, stream_start_utc=T0,
                model_name="m", model_version="1") | over


def test_onset_and_detection_bodies_share_an_id_and_validate() -> None:
    onset = onset_body(**_fields("run-A", 6000))
    det = detection_body(**_fields("run-A", 6000, end_sample=12000))
    assert onset["schema"] == "pamlive.onset/1" and det["schema"] == "pamlive.detection/1"
    assert onset["id"] == det["id"] == alert_id("run-A", "right_whale", 6000)
    assert onset["start_utc"] == det["start_utc"] == "2026-03-01T12:00:03.000Z"
    for body in (onset, det):
        body.update(seq=1, latency_ms=3.0)
    validate_onset(onset)
    validate_detection(det)
    with pytest.raises(ValueError, match="schema"):
        validate_detection(onset)  # an old reader's check keeps onsets apart
    with pytest.raises(ValueError, match="'id'"):
        validate_onset({k: v for k, v in onset.items() if k != "id"})


def test_latency_percentiles_are_numpy_s_over_the_last_messages() -> None:
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 10.0, 1500)
    kinds = rng.choice(["onset", "detection"], 1500)
    tracker = LatencyTracker(size=1000)
    for k, v in zip(kinds, values, strict=True):
        tracker.add(str(k), float(v))
    got = tracker.summary()
    recent = values[-1000:]
    onsets = values[kinds == "onset"][-1000:]
    assert got["n"] == 1000 and got["last"] == values[-1]
    assert got["p50"] == got["median"] == pytest.approx(np.percentile(recent, 50), abs=1e-3)
    assert got["p95"] == pytest.approx(np.percentile(recent, 95), abs=1e-3)
    assert got["onset_p95"] == pytest.approx(np.percentile(onsets, 95), abs=1e-3)
    assert LatencyTracker().summary()["p95"] is None


@pytest.fixture
def bus(tmp_path):
    b = AlertBus("tcp://127.0.0.1:*", station="st", log_path=tmp_path / "log.db",
                 replay_endpoint="tcp://127.0.0.1:*", heartbeat_s=0.2)
    b.start()
    yield b
    b.close()


def _ask(endpoint: str, request: dict) -> dict:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(endpoint)
    s.send(json.dumps(request).encode())
    assert s.poll(5000), "no replay reply"
    reply = json.loads(s.recv())
    s.close()
    ctx.term()
    return reply


def _subscribed(endpoint: str) -> zmq.Socket:
    """A SUB socket on ``endpoint`` that has received a message (a heartbeat): joined."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.subscribe(b"")
    sub.connect(endpoint)
    sub.recv_multipart()
    return sub


def test_an_onset_is_in_the_log_before_it_is_sent_and_replays_only_when_asked(bus, tmp_path):
    sub = _subscribed(bus.endpoint)
    reader = LogReader(tmp_path / "log.db")
    bus.publish_onset(onset_body(**_fields(bus.run_id, 6000)), ready_monotonic=time.monotonic())
    bus.publish_detection(detection_body(**_fields(bus.run_id, 6000, end_sample=10000)),
                          ready_monotonic=time.monotonic())
    sent: list[tuple[str, bytes]] = []
    while len(sent) < 2:
        topic, payload = sub.recv_multipart()
        if topic in (b"onset.right_whale", b"detection.right_whale"):
            # committed first: the reader already sees what the socket just delivered
            assert payload.decode() in reader.query(kinds=BOTH, limit=10)[0]
            sent.append((topic.decode(), payload))
    sub.close()
    reader.close()
    assert [t for t, _ in sent] == ["onset.right_whale", "detection.right_whale"]
    onset, det = (json.loads(p) for _, p in sent)
    assert onset["id"] == det["id"] and onset["seq"] < det["seq"]
    assert onset["latency_ms"] >= 0 and (onset["end_sample"], det["end_sample"]) == (10000, 10000)
    # the detections table and a plain replay request are as before: detections only
    assert read_all(tmp_path / "log.db") == [det]
    plain = _ask(bus.replay_endpoint, {"id": 1})
    assert [d["seq"] for d in plain["detections"]] == [det["seq"]] and "messages" not in plain
    both = _ask(bus.replay_endpoint, {"id": 2, "kinds": ["onset", "detection"]})
    assert both["messages"] == [onset, det] and "detections" not in both
    only = _ask(bus.replay_endpoint, {"kinds": ["onset"], "limit": 1})
    assert only["messages"] == [onset] and only["more"] is False
    bad = _ask(bus.replay_endpoint, {"kinds": ["onset", "onset"]})
    assert bad["ok"] is False and bad["code"] == "bad_request"
    assert bus.stats()["latency_ms"]["n"] == 2 and bus.stats()["latency_ms"]["onset_p95"] >= 0
    with pytest.raises(ValueError):
        bus.publish("onset.right_whale", {})  # alerts only through the log


def _collect(client: AlertClient, done, timeout_s: float = 10.0) -> list:
    events: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done(events):
        events += client.poll(50)
    return events


def _collect_from_old_monitor(bus, tmp_path, old_answer: Callable[[Callable[[bytes], bytes],
                              bytes], bytes], *, alerts: int) -> list:
    """What a client collects (until ``alerts`` alerts) from a replay server of the log
    that answers as an older monitor: ``old_answer(todays_answer, request)``."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    server = ReplayServer(router, LogReader(tmp_path / "log.db"))
    answer = server.answer
    server.answer = (  # type: ignore[method-assign]
        lambda payload, user_id=None: old_answer(answer, payload))
    server.start()
    try:
        client = AlertClient(bus.endpoint, replay_endpoint=f"tcp://127.0.0.1:{port}")
        events = _collect(client, lambda ev: sum(e.alert is not None for e in ev) >= alerts)
        client.close()
    finally:
        server.stop()
    return events


def test_a_late_client_gets_the_missed_onsets_and_detections_in_order(bus, tmp_path):
    for k in range(3):
        bus.publish_onset(onset_body(**_fields(bus.run_id, k * 8000)),
                          ready_monotonic=time.monotonic())
        bus.publish_detection(detection_body(**_fields(bus.run_id, k * 8000)),
                              ready_monotonic=time.monotonic())
    while bus.stats()["log_rows"] < 6:
        time.sleep(0.01)
    client = AlertClient(bus.endpoint, replay_endpoint=bus.replay_endpoint)
    events = _collect(client, lambda ev: sum(e.alert is not None for e in ev) >= 6)
    client.close()
    alerts = [e for e in events if e.alert is not None]
    assert [(e.kind, e.alert) for e in alerts] == [("replayed", "onset"),
                                                  ("replayed", "detection")] * 3
    assert [e.body for e in alerts] == read_all(tmp_path / "log.db", kinds=BOTH)
    assert [e.topic for e in alerts[:2]] == ["onset.right_whale", "detection.right_whale"]


def test_against_a_monitor_without_onsets_the_client_still_heals_detections(tmp_path, bus):
    """A monitor from before onsets refuses the ``kinds`` field; the client asks again
    without it (detections only) instead of reporting a gap."""
    for k in range(2):
        bus.publish_detection(detection_body(**_fields(bus.run_id, k * 8000)),
                              ready_monotonic=time.monotonic())
    while bus.stats()["log_rows"] < 2:
        time.sleep(0.01)

    def old_answer(answer: Callable[[bytes], bytes], payload: bytes) -> bytes:
        request = json.loads(payload)  # the earlier protocol: no "kinds"
        if "kinds" in request:
            return error_reply(request.get("id"), "bad_request",
                               "unknown request fields ['kinds']")
        return answer(payload)

    events = _collect_from_old_monitor(bus, tmp_path, old_answer, alerts=2)
    assert [(e.kind, e.alert) for e in events if e.alert] == [("replayed", "detection")] * 2
    assert not [e for e in events if e.kind == "gap"]


@pytest.mark.slow
def test_live_onsets_open_every_detection_at_once_and_match_the_offline_merge_rule(
        tutorial, model, tmp_path):  # noqa: F811
    """A replayed recording through the monitor: each detection was preceded by one
    onset with its id and start, at the window the merge rule opened it (offline, same
    audio); onsets are logged; health gives latency percentiles."""
    path, audio, rate = tutorial
    # the built-in model at 0.5: the tutorial recording (another site) needs it for detections
    cfg = load_config(write_config(tmp_path, model, f'kind = "replay"\nfiles = ["{path}"]\n'
                                                  "speed = 40.0\nblocksize = 1000",
                                   TUTORIAL_THRESHOLD_TABLE))
    sub = Subscriber(cfg.alerts.publish)
    assert run_monitor(cfg, headless=True, duration_s=60.0) == 0
    messages = sub.close()
    alerts = [b for t, b in messages if t.startswith(("onset.", "detection."))]
    onsets = [b for b in alerts if b["schema"] == "pamlive.onset/1"]
    detections = [b for b in alerts if b["schema"] == "pamlive.detection/1"]
    assert detections and len(onsets) == len(detections)
    assert [(o["id"], o["start_sample"]) for o in onsets] == [
        (d["id"], d["start_sample"]) for d in detections]
    for k, body in enumerate(alerts):  # onset, its detection, next onset, ...
        assert body["schema"] == ("pamlive.onset/1" if k % 2 == 0 else "pamlive.detection/1")
    assert [(d["start_sample"], d["end_sample"]) for d in detections] == [
        (e.start_sample, e.end_sample)
        for e in analyze_detections(model, audio, rate, thresholds=TUTORIAL_THRESHOLDS)]
    # the offline merge rule on the same audio opens them at the same windows
    package = load_model_package(model)
    windower = Windower(package.chain(), rate, 1, package.segment_s, cfg.model.hop_s)
    windows = windower.push(audio) + windower.flush()
    merger = make_merger(package, rate, cfg.model.max_merge, cfg.model.thresholds)
    scores = classify_windows(Classifier(package), windows)
    offline = [e for w, s in zip(windows, scores, strict=True)
               for e in merger.push_events(w.index, w.start_sample, w.end_sample, s)
               if type(e).__name__ == "Onset"]
    assert [(o["start_sample"], o["end_sample"], o["channels"]) for o in onsets] == [
        (o.start_sample, o.end_sample, o.channels) for o in offline]
    np.testing.assert_allclose([o["score"] for o in onsets], [o.score for o in offline],
                               rtol=1e-5)
    assert all(o["latency_ms"] >= 0 for o in onsets)
    assert read_all(data_path(cfg, cfg.alerts.log), kinds=BOTH) == alerts
    health = [b for t, b in messages if t == "health"][-1]["latency_ms"]
    assert health["n"] == len(alerts) and health["p50"] <= health["p95"]
    assert health["onset_p95"] is not None and health["onset_p50"] <= health["onset_p95"]
