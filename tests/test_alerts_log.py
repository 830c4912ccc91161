"""Durable log queries across runs, retention, and the replay request parser."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamlive.alerts.log import DetectionLog, LoggedDetection, LogReader, UnknownRunError
from pamlive.alerts.replay import MAX_REQUEST_BYTES, BadRequest, ReplayServer, parse_request

T0 = 1_780_000_000.0  # an arbitrary UTC epoch


def _row(run_id: str, seq: int, start_epoch: float) -> LoggedDetection:
    return LoggedDetection(seq, start_epoch, json.dumps({"run_id": run_id, "seq": seq}))


@pytest.fixture
def two_run_log(tmp_path):
    """Run A: detections at seq 2, 5, 9; run B (a restart): seq 3, 4."""
    path = tmp_path / "log.db"
    log = DetectionLog(path)
    log.start_run("A", "st")
    log.append([_row("A", 2, T0), _row("A", 5, T0 + 10)])
    log.append([_row("A", 9, T0 + 20)])
    log.close()
    log = DetectionLog(path)
    log.start_run("B", "st")
    log.append([_row("B", 3, T0 + 30), _row("B", 4, T0 + 40)])
    yield path, log
    log.close()


def _keys(bodies):
    return [(json.loads(b)["run_id"], json.loads(b)["seq"]) for b in bodies]


def test_queries_walk_runs_in_order(two_run_log):
    path, _ = two_run_log
    reader = LogReader(path)
    all_rows = [("A", 2), ("A", 5), ("A", 9), ("B", 3), ("B", 4)]
    assert _keys(reader.query()[0]) == all_rows
    assert _keys(reader.query(after=("A", 5))[0]) == all_rows[2:]
    assert _keys(reader.query(after=("A", 3), until=("B", 4))[0]) == [("A", 5), ("A", 9), ("B", 3)]
    assert _keys(reader.query(since_epoch=T0 + 15)[0]) == all_rows[2:]
    page, more = reader.query(after=("A", 0), limit=2)
    assert (_keys(page), more) == ([("A", 2), ("A", 5)], True)
    page, more = reader.query(after=("A", 5), limit=3)
    assert (_keys(page), more) == (all_rows[2:], False)
    with pytest.raises(UnknownRunError):
        reader.query(after=("C", 1))
    reader.close()


def test_retention_prunes_old_detections_and_empty_runs(two_run_log):
    path, log = two_run_log
    old = time.time() - 10 * 86400
    with sqlite3.connect(path) as conn:  # age run A (its rows and its start) by 10 days
        conn.execute("UPDATE detections SET logged_epoch = ? WHERE run_ord = 1", (old,))
        conn.execute("UPDATE runs SET started_epoch = ? WHERE run_id = 'A'", (old,))
    assert log.prune(retention_days=5) == 3
    reader = LogReader(path)
    assert _keys(reader.query()[0]) == [("B", 3), ("B", 4)]
    with pytest.raises(UnknownRunError):
        reader.query(after=("A", 1))
    reader.close()


def test_log_is_wal_with_full_sync(tmp_path):
    log = DetectionLog(tmp_path / "log.db")
    assert log._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    log.close()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe", "bad_request"),
        (b"[1]", "bad_request"),
        (b'{"after": {"run_id": "A"}}', "bad_request"),
        (b'{"after": {"run_id": "A", "seq": -1}}', "bad_request"),
        (b'{"limit": 0}', "bad_request"),
        (b'{"since_utc": "noon"}', "bad_request"),
        (b'{"evil": 1}', "bad_request"),
        (b"[" * 50_000, "bad_request"),
        (b" " * (MAX_REQUEST_BYTES + 1), "too_large"),
    ],
    ids=["utf8", "array", "no-seq", "neg-seq", "limit", "since", "unknown", "deep", "big"],
)
def test_bad_requests_are_named(payload, code):
    with pytest.raises(BadRequest) as info:
        parse_request(payload)
    assert info.value.code == code


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: st.lists(children) | st.dictionaries(st.text(max_size=10), children),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {},
            optional={
                "after": st.fixed_dictionaries({"run_id": st.text(), "seq": st.integers()}),
                "until": st.fixed_dictionaries({"run_id": st.text(), "seq": st.integers()}),
                "since_utc": st.text(max_size=30),
                "limit": st.integers(),
                "id": st.integers() | st.text(),
            },
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_payload_gets_a_json_reply(shared_log_reader, payload):
    reply = json.loads(shared_log_reader.answer(payload))
    assert reply["schema"] == "pamlive.replay/1"
    assert isinstance(reply["ok"], bool)
    assert reply["ok"] or reply["error"]


@pytest.fixture(scope="module")
def shared_log_reader(tmp_path_factory):
    """A replay server's request handler over a small log (no socket needed)."""
    path = tmp_path_factory.mktemp("log") / "log.db"
    log = DetectionLog(path)
    log.start_run("A", "st")
    log.append([_row("A", s, T0 + s) for s in range(1, 30)])
    log.close()
    server = ReplayServer(socket=None, reader=LogReader(path))
    yield server


def test_a_log_from_before_run_ends_finds_no_dead_run(tmp_path):
    """Upgrading must not take every earlier run for one that died: their ends are unknown."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (ord INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT"
                 " NULL UNIQUE, station TEXT NOT NULL, started_epoch REAL NOT NULL)")
    conn.execute("INSERT INTO runs (run_id, station, started_epoch) VALUES ('old', 's', 1.0)")
    conn.commit()
    conn.close()
    log = DetectionLog(path)
    assert log.start_run("new", "s") == []
    log.end_run("sigterm")
    log.close()
    log = DetectionLog(path)
    assert log.start_run("newer", "s") == []  # "new" recorded its end
    log.close()  # "newer" did not: the next start finds it
    found = DetectionLog(path).start_run("newest", "s")
    assert [(r.run_id, r.open_onsets) for r in found] == [("newer", ())]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT run_id, stop_reason FROM runs ORDER BY ord").fetchall() == [
        ("old", "unknown"), ("new", "sigterm"), ("newer", "unclean"), ("newest", None)]


def test_a_bus_that_cannot_bind_leaves_no_dead_run(tmp_path):
    """A start refused (replay port in use) is no run that died: the next start is quiet."""
    from pamlive.alerts.bus import AlertBus
    from pamlive.errors import ConfigError

    taken = AlertBus(f"ipc://{tmp_path}/a", station="s", log_path=tmp_path / "a.db",
                     replay_endpoint="tcp://127.0.0.1:0")
    taken.start()
    try:
        refused = AlertBus(f"ipc://{tmp_path}/b", station="s", log_path=tmp_path / "b.db",
                           replay_endpoint=taken.replay_endpoint)
        with pytest.raises(ConfigError):
            refused.start()
    finally:
        taken.close()
    assert DetectionLog(tmp_path / "b.db").start_run("next", "s") == []


def test_a_run_that_cannot_be_registered_on_a_full_disk_is_one_clear_error(tmp_path):
    """A restart onto a full data disk (the soak's finding: kill -9 left the WAL, the disk
    then filled): one line naming the log and the full disk, not a traceback."""
    from test_field_clips import fill, tiny_tmpfs

    from pamlive.errors import ConfigError

    with tiny_tmpfs(tmp_path / "disk", "1m") as disk:
        first = DetectionLog(disk / "log.db")
        try:
            first.start_run("r1", "s")  # still open: its WAL stays, as after kill -9
            fill(disk)
            second = DetectionLog(disk / "log.db")
            try:
                with pytest.raises(ConfigError, match=r"log\.db: the disk is full"):
                    second.start_run("r2", "s")
            finally:
                second.close()
        finally:
            first.close()
