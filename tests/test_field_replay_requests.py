"""Replay requests at the edges of the calendar get a coded error, through a real socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from pamlive.alerts.log import DetectionLog, LoggedDetection, LogReader
from pamlive.alerts.replay import ReplayServer


@pytest.fixture
def replay(tmp_path: Path):
    log = DetectionLog(tmp_path / "log.db")
    log.start_run("A", "st")
    log.append([LoggedDetection(1, 1_780_000_000.0, json.dumps({"seq": 1}))])
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(f"ipc://{tmp_path}/replay")
    server = ReplayServer(router, LogReader(tmp_path / "log.db"))
    server.start()
    req = ctx.socket(zmq.REQ)
    req.connect(f"ipc://{tmp_path}/replay")

    def ask(request: dict) -> dict:
        req.send(json.dumps(request).encode())
        assert req.poll(5000), f"no reply to {request}"
        return json.loads(req.recv())

    yield ask
    req.close(linger=0)
    server.stop()
    ctx.term()
    log.close()


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_since_utc_beyond_the_calendar_gets_a_coded_error(replay, since) -> None:
    reply = replay({"id": 7, "since_utc": since})
    assert (reply["ok"], reply["code"], reply["id"]) == (False, "bad_request", 7)
    assert "since_utc" in reply["error"]
    assert replay({"id": 8})["detections"] == [{"seq": 1}]  # and the server still serves


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.timezones()))
def test_any_aware_time_is_answered(replay_server_only, when) -> None:
    reply = json.loads(replay_server_only.answer(json.dumps({"since_utc": when.isoformat()})
                                                 .encode()))
    assert reply["ok"] or reply["code"] == "bad_request"


@pytest.fixture(scope="module")
def replay_server_only(tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "log.db"
    log = DetectionLog(path)
    log.start_run("A", "st")
    log.close()
    reader = LogReader(path)
    yield ReplayServer(socket=None, reader=reader)
    reader.close()


def test_a_row_committed_while_replay_reads_is_served_once(tmp_path: Path) -> None:
    """The writer's held rows are read before the table: a row in both is served once."""
    log = DetectionLog(tmp_path / "log.db")
    log.start_run("A", "st")
    body = {s: json.dumps({"seq": s}) for s in (1, 2, 3)}
    log.append([LoggedDetection(s, 100.0 + s, body[s]) for s in (1, 2)])
    held = [(1, 2, 102.0, body[2], "detection"),  # 2: just committed
            (1, 3, 103.0, body[3], "detection")]
    reader = LogReader(tmp_path / "log.db", lambda: held)
    try:
        assert [json.loads(b)["seq"] for b in reader.query()[0]] == [1, 2, 3]
        assert reader.query(limit=2) == ([body[1], body[2]], True)
        assert [json.loads(b)["seq"] for b in reader.query(after=("A", 2))[0]] == [3]
    finally:
        reader.close()
        log.close()
