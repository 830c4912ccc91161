"""Calls of an event model (bats) on the bus: ``call.<species>`` and ``summary.calls``,
committed to the log before they are sent, replayable, healed by the client, and the
older topics and replies unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import zmq
from test_alerts_onset import _ask, _collect, _collect_from_old_monitor, _fields, _subscribed, bus  # noqa: F401

from pamlive.alerts.client import AlertClient
from pamlive.alerts.log import LogReader, read_all
from pamlive.alerts.replay import error_reply
from pamlive.alerts.schema import (
    call_body,
    call_summary_body,
    call_topic,
    detection_body,
    species_slug,
    validate_call,
    validate_call_summary,
)

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
RATE = 384000
CALLS = ("call", "call_summary")


def _utc(sample: int) -> datetime:
    return T0 + timedelta(seconds=sample / RATE)


def _call(run_id: str, start: int, species: str = "Pipistrellus pygmaeus", **over) -> dict:
    fields = dict(run_id=run_id, station="st", channel=2, species=species, class_prob=0.81,
                  det_prob=0.64, probs={species: 0.81, "Myotis daubentonii": 0.02},
                  start_sample=start, end_sample=start + 1900, sample_rate=RATE,
                  low_hz=52000.0, high_hz=78125.5, utc_at=_utc, model_name="bd2",
                  model_version="1") | over
    return call_body(**fields)


def _summary(run_id: str, minute: int, **counts: int) -> dict:
    start = T0 + timedelta(minutes=minute)
    return call_summary_body(run_id=run_id, station="st", start=start,
                             end=start + timedelta(minutes=1), counts=counts,
                             max_prob={k: 0.9 for k in counts}, partial=False,
                             model_name="bd2", model_version="1")


def test_species_become_ascii_topic_words() -> None:
    assert species_slug("Pipistrellus pygmaeus") == "pipistrellus_pygmaeus"
    assert species_slug("Barbastella barbastellus ") == "barbastella_barbastellus"
    assert species_slug("Plecotus  auritus/austriacus") == "plecotus_auritus_austriacus"
    assert species_slug("Eptésicus") == "eptesicus"
    assert species_slug("???") == "unknown"
    assert call_topic("Myotis nattereri") == "call.myotis_nattereri"


def test_call_and_summary_bodies_carry_the_sample_clock_and_validate() -> None:
    body = _call("run-A", 3 * RATE + 192)
    assert body["start_utc"] == "2026-03-01T12:00:03.000Z"  # 0.5 ms: ms precision in text
    assert (body["start_sample"], body["end_sample"], body["sample_rate"]) == (
        3 * RATE + 192, 3 * RATE + 2092, RATE)
    assert body["id"] == f"run-A:call:2:{3 * RATE + 192}:52000"
    body.update(seq=4, latency_ms=12.5)
    validate_call(body)
    for field, bad in (("species", ""), ("low_hz", float("nan")), ("high_hz", 1.0),
                       ("channel", -1), ("probs", {"x": "high"}), ("end_sample", 0)):
        with pytest.raises(ValueError, match=f"'{field}'"):
            validate_call(body | {field: bad})
    with pytest.raises(ValueError, match="'latency_ms'"):
        validate_call({k: v for k, v in body.items() if k != "latency_ms"})
    summary = _summary("run-A", 0, **{"Pipistrellus pygmaeus": 3, "Nyctalus noctula": 1})
    assert summary["calls"] == 4 and summary["partial"] is False
    summary.update(seq=5)
    validate_call_summary(summary)
    with pytest.raises(ValueError, match="'calls'"):
        validate_call_summary(summary | {"calls": 5})
    with pytest.raises(ValueError, match="'max_prob'"):
        validate_call_summary(summary | {"max_prob": {}})
    with pytest.raises(ValueError, match="'schema'"):
        validate_call(summary)


def test_calls_and_summaries_are_logged_before_they_are_sent_and_replay_when_asked(
        bus, tmp_path):  # noqa: F811
    sub = _subscribed(bus.endpoint)
    reader = LogReader(tmp_path / "log.db")
    bus.publish_call(_call(bus.run_id, 1000), ready_monotonic=time.monotonic())
    bus.publish_call(_call(bus.run_id, 9000, species="Nyctalus noctula"),
                     ready_monotonic=time.monotonic())
    bus.publish_call_summary(_summary(bus.run_id, 0, **{"Pipistrellus pygmaeus": 1,
                                                        "Nyctalus noctula": 1}))
    bus.publish_detection(detection_body(**_fields(bus.run_id, 6000)),
                          ready_monotonic=time.monotonic())
    sent: list[tuple[str, dict]] = []
    while len(sent) < 4:
        topic, payload = sub.recv_multipart()
        if topic != b"heartbeat":
            assert payload.decode() in reader.query(kinds=(*CALLS, "detection"), limit=10)[0]
            sent.append((topic.decode(), json.loads(payload)))
    sub.close()
    reader.close()
    assert [t for t, _ in sent] == ["call.pipistrellus_pygmaeus", "call.nyctalus_noctula",
                                    "summary.calls", "detection.right_whale"]
    for _, body in sent[:2]:
        validate_call(body)  # the bus added seq, time_utc and latency_ms
    validate_call_summary(sent[2][1])
    assert "latency_ms" not in sent[2][1]
    assert read_all(tmp_path / "log.db", kinds=("call",)) == [b for _, b in sent[:2]]
    assert read_all(tmp_path / "log.db", kinds=("call_summary",)) == [sent[2][1]]
    # the detections table and a plain replay request are as before: detections only
    assert read_all(tmp_path / "log.db") == [sent[3][1]]
    plain = _ask(bus.replay_endpoint, {"id": 1})
    assert [d["seq"] for d in plain["detections"]] == [sent[3][1]["seq"]]
    calls = _ask(bus.replay_endpoint, {"id": 2, "kinds": ["call"]})
    assert calls["messages"] == [b for _, b in sent[:2]]
    assert bus.stats()["latency_ms"]["n"] == 3  # the two calls and the detection
    for topic in ("call.x", "summary.calls"):
        with pytest.raises(ValueError):
            bus.publish(topic, {})  # alerts only through the log


def test_a_late_client_gets_the_missed_calls_and_summaries_in_order(bus, tmp_path):  # noqa: F811
    for k in range(3):
        bus.publish_call(_call(bus.run_id, k * RATE), ready_monotonic=time.monotonic())
    bus.publish_call_summary(_summary(bus.run_id, 0, **{"Pipistrellus pygmaeus": 3}))
    while bus.stats()["log_rows"] < 4:
        time.sleep(0.01)
    client = AlertClient(bus.endpoint, replay_endpoint=bus.replay_endpoint,
                         topics=("call.", "summary."))
    events = _collect(client, lambda ev: sum(e.alert is not None for e in ev) >= 4)
    bus.publish_call(_call(bus.run_id, 5 * RATE), ready_monotonic=time.monotonic())
    events += _collect(client, lambda ev: sum(e.alert is not None for e in ev) >= 1)
    client.close()
    alerts = [e for e in events if e.alert is not None]
    assert [(e.kind, e.alert) for e in alerts] == [("replayed", "call")] * 3 + [
        ("replayed", "call_summary"), ("message", "call")]
    assert [e.body for e in alerts] == read_all(tmp_path / "log.db", kinds=CALLS)
    assert alerts[0].topic == "call.pipistrellus_pygmaeus"
    assert alerts[3].topic == "summary.calls"


def test_a_call_on_the_wrong_topic_or_with_bad_fields_is_malformed(bus):  # noqa: F811
    client = AlertClient(bus.endpoint, replay_endpoint=bus.replay_endpoint)
    _collect(client, lambda ev: any(e.topic == "heartbeat" for e in ev))  # joined
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)  # a second publisher on the client: a forged message
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    client._sub.connect(f"tcp://127.0.0.1:{port}")
    body = _call(bus.run_id, 1000) | {"seq": 1, "latency_ms": 1.0}
    time.sleep(0.3)  # the SUB's connect to the forger
    pub.send_multipart([b"call.nyctalus_noctula", json.dumps(body).encode()])
    events = _collect(client, lambda ev: any(e.kind == "malformed" for e in ev))
    pub.close(linger=0)
    client.close()
    bad = [e for e in events if e.kind == "malformed"]
    assert bad and "does not match species" in (bad[0].error or "")


def test_against_a_monitor_without_calls_the_client_still_heals_onsets_and_detections(
        tmp_path, bus):  # noqa: F811
    """A monitor from before calls refuses their kinds; the client asks again with the
    kinds that monitor knows instead of reporting a gap."""
    from pamlive.alerts.schema import onset_body

    bus.publish_onset(onset_body(**_fields(bus.run_id, 0)), ready_monotonic=time.monotonic())
    bus.publish_detection(detection_body(**_fields(bus.run_id, 0)),
                          ready_monotonic=time.monotonic())
    while bus.stats()["log_rows"] < 2:
        time.sleep(0.01)
    asked: list[object] = []

    def old_answer(answer: Callable[[bytes], bytes], payload: bytes) -> bytes:
        request = json.loads(payload)  # the protocol before calls
        asked.append(request.get("kinds"))
        if not set(request.get("kinds", [])) <= {"detection", "onset"}:
            return error_reply(request.get("id"), "bad_request",
                               "kinds must be a list of distinct kinds of "
                               "['detection', 'onset']")
        return answer(payload)

    events = _collect_from_old_monitor(bus, tmp_path, old_answer, alerts=2)
    assert [(e.kind, e.alert) for e in events if e.alert] == [("replayed", "onset"),
                                                             ("replayed", "detection")]
    assert asked[-2:] == [["detection", "onset", "call", "call_summary"],
                          ["detection", "onset"]]  # after the newer kinds it refused
    assert not [e for e in events if e.kind == "gap"]
