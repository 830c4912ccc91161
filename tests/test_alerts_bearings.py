"""Bearings in the durable log (issue 23): ``bearing.<class>`` is committed before it is
sent, replays under the kind ``bearing``, is healed by the client like a detection, and
a log from before bearings still opens."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_alerts_onset import _ask, _collect, _collect_from_old_monitor, _fields, _subscribed, bus  # noqa: F401

from pamlive.alerts.client import AlertClient, BusEvent
from pamlive.alerts.log import DetectionLog, LogReader, read_all
from pamlive.alerts.replay import error_reply
from pamlive.alerts.schema import BEARING_SCHEMA, detection_body, validate_bearing

BOTH = ("detection", "bearing")
SQUARE = [[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [40.0, 40.0]]


def _bearing(det: dict, degrees: float = 123.0) -> dict:
    """The bearing message of a detection body, as ``array.worker.bearing_body`` makes it."""
    return {"schema": BEARING_SCHEMA, "run_id": det["run_id"], "station": det["station"],
            "class": det["class"], "start_sample": det["start_sample"],
            "end_sample": det["end_sample"], "start_utc": det["start_utc"], "cost_ms": 1.5,
            "bearing_deg": degrees, "bearing_reference": "array",
            "relative_bearing_deg": degrees, "bearing_uncertainty_deg": 0.4}


def _publish_pairs(bus, n: int) -> None:  # noqa: F811
    """``n`` detections, each followed by its bearing; returns once all are logged."""
    for k in range(n):
        det = detection_body(**_fields(bus.run_id, k * 8000))
        bus.publish_detection(det, ready_monotonic=time.monotonic())
        bus.publish_bearing(_bearing(det, 10.0 * k))
    while bus.stats()["log_rows"] < 2 * n:
        time.sleep(0.01)


def test_a_bearing_is_in_the_log_before_it_is_sent_and_replays_only_when_asked(
        bus, tmp_path):  # noqa: F811
    sub = _subscribed(bus.endpoint)
    reader = LogReader(tmp_path / "log.db")
    det = detection_body(**_fields(bus.run_id, 6000))
    bus.publish_bearing(_bearing(det))
    while (frames := sub.recv_multipart())[0] != b"bearing.right_whale":
        pass
    # committed first: the reader already sees what the socket just delivered
    assert reader.query(kinds=("bearing",))[0] == [frames[1].decode()]
    sub.close()
    reader.close()
    sent = json.loads(frames[1])
    validate_bearing(sent)
    assert read_all(tmp_path / "log.db") == []  # the detections table: detections only
    assert _ask(bus.replay_endpoint, {"id": 1})["detections"] == []
    asked = _ask(bus.replay_endpoint, {"id": 2, "kinds": ["detection", "bearing"]})
    assert asked["messages"] == [sent] and "detections" not in asked
    with pytest.raises(ValueError):
        bus.publish("bearing.right_whale", {})  # alerts only through the log
    with pytest.raises(ValueError):
        bus.publish_bearing({k: v for k, v in _bearing(det).items() if k != "start_utc"})


def test_a_late_client_gets_each_detection_with_its_bearing(bus, tmp_path):  # noqa: F811
    _publish_pairs(bus, 3)
    client = AlertClient(bus.endpoint, replay_endpoint=bus.replay_endpoint)
    events = _collect(client, lambda ev: sum(e.alert is not None for e in ev) >= 6)
    client.close()
    alerts = [e for e in events if e.alert is not None]
    assert [(e.kind, e.alert) for e in alerts] == [("replayed", "detection"),
                                                  ("replayed", "bearing")] * 3
    assert [e.body for e in alerts] == read_all(tmp_path / "log.db", kinds=BOTH)
    assert alerts[1].topic == "bearing.right_whale" and alerts[1].position is not None


def test_against_a_monitor_from_before_logged_bearings_the_client_still_heals(
        tmp_path, bus):  # noqa: F811
    """A monitor from before bearings were logged refuses the kind; the client asks again
    with the kinds that monitor knows instead of reporting a gap."""
    _publish_pairs(bus, 1)
    asked: list[object] = []

    def old_answer(answer: Callable[[bytes], bytes], payload: bytes) -> bytes:
        request = json.loads(payload)
        asked.append(request.get("kinds"))
        if "bearing" in request.get("kinds", []):
            return error_reply(request.get("id"), "bad_request",
                               "kinds must be a list of distinct kinds of ['call', "
                               "'call_summary', 'detection', 'onset']")
        return answer(payload)

    events = _collect_from_old_monitor(bus, tmp_path, old_answer, alerts=1)
    assert [(e.kind, e.alert) for e in events if e.alert] == [("replayed", "detection")]
    assert asked[-1] == ["detection", "onset", "call", "call_summary"]
    assert not [e for e in events if e.kind == "gap"]


def test_a_log_from_before_bearings_opens_for_reading_and_writing(tmp_path):
    """A log written before the ``bearings`` table: a reader finds no bearings in it, a
    writer adds the table and keeps the old rows."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE runs (ord INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL"
        " UNIQUE, station TEXT NOT NULL, started_epoch REAL NOT NULL, ended_epoch REAL,"
        " stop_reason TEXT);"
        + "".join(f"CREATE TABLE {t} (run_ord INTEGER NOT NULL, seq INTEGER NOT NULL,"
                  " start_epoch REAL NOT NULL, logged_epoch REAL NOT NULL, body TEXT NOT NULL,"
                  " PRIMARY KEY (run_ord, seq)) WITHOUT ROWID;"
                  for t in ("detections", "onsets", "calls", "call_summaries")))
    conn.execute("INSERT INTO runs (run_id, station, started_epoch, ended_epoch, stop_reason)"
                 " VALUES ('old', 's', 1.0, 2.0, 'sigterm')")
    conn.execute("INSERT INTO detections VALUES (1, 1, 1.0, 1.0, '{\"seq\": 1}')")
    conn.commit()
    conn.close()
    assert read_all(path, kinds=BOTH) == [{"seq": 1}]
    log = DetectionLog(path)
    assert log.start_run("new", "s") == []
    log.close()
    assert read_all(path, kinds=BOTH) == [{"seq": 1}]
    assert ("bearings",) in sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()


def _demo(config: Path, duration_s: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pamlive", "demo", "--headless",
                             "--duration", str(duration_s), "-c", str(config)],
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_replayed_detection_comes_with_its_bearing_after_a_monitor_restart(tmp_path):
    """The demo (a simulated square array, [array] on) runs to its end; a subscriber that
    had acted on nothing of it resumes while the monitor starts again, and the replay
    heals every detection of the first run together with its bearing."""
    pub, replay, db = f"ipc://{tmp_path}/pub", f"ipc://{tmp_path}/replay", tmp_path / "a.db"
    config = tmp_path / "demo.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[source]\nkind = "simulator"\nspeed = 6.0\n'
        f'[simulator]\nchannels = 4\ncall_interval_s = 6.0\nsnr_db_range = [15.0, 25.0]\n'
        f'seed = 5\nship_probability = 0.0\ngeometry = {SQUARE}\n'
        f'[alerts]\npublish = "{pub}"\nreplay = "{replay}"\nlog = "{db}"\n'
        f'[array]\npositions = {SQUARE}\nmin_channels = {{ right_whale = 2 }}\n',
        encoding="utf-8")
    first = _demo(config, 5.0)  # 30 s of audio at speed 6: four calls, each with a bearing
    _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    logged = read_all(db)
    assert logged, f"the first run logged no detection:\n{err}"
    first_run = logged[0]["run_id"]

    client = AlertClient(pub, replay_endpoint=replay, resume_after=(first_run, 0))
    second = _demo(config, 120.0)
    events: list[BusEvent] = []
    try:
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and not any(
                e.kind == "message" and e.body and e.body["run_id"] != first_run
                for e in events):
            events += client.poll(100)
    finally:
        second.send_signal(signal.SIGTERM)
        second.communicate(timeout=60)
        client.close()
    healed = [e for e in events if e.kind == "replayed" and e.body["run_id"] == first_run]
    detections = [e.body for e in healed if e.alert == "detection"]
    bearings = {(b["class"], b["start_sample"]): b for b in
                (e.body for e in healed if e.alert == "bearing")}
    assert detections == logged  # every detection of the first run, in order, once
    for det in detections:
        bearing = bearings.get((det["class"], det["start_sample"]))
        assert bearing is not None, f"detection {det['id']} came back without its bearing"
        assert bearing["seq"] > det["seq"]
        validate_bearing(bearing)
    assert len(bearings) == len(detections)
