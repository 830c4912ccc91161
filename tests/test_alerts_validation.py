"""Operators' verdicts on real monitors (simulator processes, real ZeroMQ, real logs):
published as ``validation.<class>``, logged first, replayed after a restart, counted in
health; only listed CURVE keys may validate, on a loopback bus anyone local may."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zmq.auth

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.client import AlertClient, BusEvent
from pamlive.alerts.keys import make_keypair
from pamlive.alerts.log import read_all
from pamlive.alerts.operator import VerdictConnection, VerdictRefused, send_verdict
from pamlive.alerts.schema import detection_body
from pamlive.alerts.simulate import spawn
from pamlive.alerts.validation import validate_validation
from pamlive.alerts.verdicts import VerdictStore
from pamlive.errors import ConfigError
from pamlive.utc import utc_iso


def _collect(client: AlertClient, until, timeout_s: float = 20.0) -> list[BusEvent]:
    """Poll until ``until(events)`` holds; fails after ``timeout_s``."""
    events: list[BusEvent] = []
    deadline = time.monotonic() + timeout_s
    while not until(events):
        assert time.monotonic() < deadline, f"not in time; got {[e.topic for e in events]}"
        events += client.poll(100)
    return events


def _alerts(events: list[BusEvent], alert: str) -> list[dict]:
    return [e.body for e in events if e.alert == alert and e.body is not None]


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)


def _simulator(tmp_path: Path, *extra: str, stderr=None) -> tuple[subprocess.Popen, dict]:
    return spawn(["--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*",
                  "--log", str(tmp_path / "log.db"), "--rate", "10", "--heartbeat-s", "0.2",
                  "--linger-s", "60", *extra], stderr=stderr)  # fmt: skip


def test_a_verdict_reaches_subscribers_and_survives_a_restart(tmp_path: Path) -> None:
    joined = datetime.now(UTC) - timedelta(seconds=1)
    proc, ready = _simulator(tmp_path, "--count", "3")
    try:
        with AlertClient(ready["publish"], replay_endpoint=ready["replay"]) as client, \
                VerdictConnection(ready["replay"]) as monitor:
            events = _collect(client, lambda ev: len(_alerts(ev, "detection")) == 3)
            first, second = _alerts(events, "detection")[:2]
            sent = send_verdict(monitor, first["id"], "rejected", validated_class="humpback",
                                operator="ana", note="a humpback moan")
            validate_validation(sent)
            heard = _alerts(_collect(client, lambda ev: _alerts(ev, "validation")),
                            "validation")
            assert heard == [sent]
            assert (sent["detection_id"], sent["verdict"], sent["validated_class"],
                    sent["operator"], sent["note"], sent["class"]) == (
                first["id"], "rejected", "humpback", "ana", "a humpback moan", "right_whale")
            assert sent["detection"]["start_utc"] == first["start_utc"]
            with pytest.raises(VerdictRefused) as refused:
                send_verdict(monitor, "no-such-run:right_whale:0", "confirmed")
            assert refused.value.code == "unknown_detection"
    finally:
        _stop(proc)
    # logged before it was sent: the log holds it exactly as subscribers saw it
    assert read_all(tmp_path / "log.db", kinds=("validation",)) == [sent]

    proc, ready = _simulator(tmp_path, "--count", "1")  # the monitor restarts on its log
    try:
        with AlertClient(ready["publish"], replay_endpoint=ready["replay"],
                         since_utc=joined) as client, \
                VerdictConnection(ready["replay"]) as monitor:
            events = _collect(client, lambda ev: len(_alerts(ev, "detection")) == 4)
            replayed = [e.body for e in events if e.kind == "replayed"
                        and e.alert == "validation"]
            assert replayed == [sent]  # the old run's verdict, fetched back
            later = send_verdict(monitor, second["id"], "confirmed")  # an old run's detection
            assert later["operator"] == "local" and later["detection_id"] == second["id"]
            changed = send_verdict(monitor, first["id"], "confirmed")  # a change of mind
            _collect(client, lambda ev: len(_alerts(ev, "validation")) == 2)
    finally:
        _stop(proc)
    history = read_all(tmp_path / "log.db", kinds=("validation",))
    assert [v["verdict_id"] for v in history] == [sent["verdict_id"], later["verdict_id"],
                                                  changed["verdict_id"]]


def _publish_detections(bus: AlertBus, starts: list[datetime]) -> list[str]:
    ids = []
    for i, start in enumerate(starts):
        body = detection_body(run_id=bus.run_id, station="st", class_name="right_whale",
                              score=0.9, scores={"right_whale": 0.9}, channels=[0],
                              start_sample=i * 4000, end_sample=i * 4000 + 4000,
                              sample_rate=2000, stream_start_utc=start - timedelta(
                                  seconds=i * 2), model_name="m", model_version="1")
        bus.publish_detection(body, ready_monotonic=time.monotonic())
        ids.append(body["id"])
    return ids


def test_health_counts_detections_waiting_for_a_verdict_across_restarts(tmp_path):
    log = tmp_path / "log.db"
    now = datetime.now(UTC)
    with AlertBus("tcp://127.0.0.1:*", station="st", log_path=log,
                  replay_endpoint="tcp://127.0.0.1:*", heartbeat_s=0.2) as bus:
        ids = _publish_detections(bus, [now - timedelta(seconds=s) for s in (300, 120, 10)])
        with VerdictConnection(bus.replay_endpoint) as monitor:
            deadline = time.monotonic() + 10  # the detections are logged by the publisher
            while bus.verdicts.stats(time.time())["waiting"] < 3:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            stats = bus.verdicts.stats(time.time())
            assert stats["waiting"] == 3 and 299 <= stats["oldest_waiting_s"] < 330
            send_verdict(monitor, ids[0], "confirmed")
            send_verdict(monitor, ids[0], "unsure", note="second look")
        stats = bus.stats()["validation"]
        assert (stats["waiting"], stats["verdicts"]) == (2, 2)
        assert 119 <= stats["oldest_waiting_s"] < 150  # the oldest now waiting
    with AlertBus("tcp://127.0.0.1:*", station="st", log_path=log) as bus:
        stats = bus.verdicts.stats(time.time())
        assert (stats["waiting"], stats["verdicts"]) == (2, 2)
        latest = bus.verdicts.latest(ids[0])
        assert latest is not None and (latest["verdict"], latest["note"]) == (
            "unsure", "second look")


def _keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    keys, clients, operators = tmp_path / "keys", tmp_path / "clients", tmp_path / "operators"
    clients.mkdir()
    operators.mkdir()
    for name in ("server", "alice", "mallory"):
        make_keypair(keys, name)
    for name in ("alice", "mallory"):  # both may listen ...
        shutil.copy(keys / f"{name}.key", clients)
    shutil.copy(keys / "alice.key", operators)  # ... only alice may validate
    return keys, clients, operators


def test_only_keys_in_the_operators_list_may_validate(tmp_path: Path) -> None:
    keys, clients, operators = _keys(tmp_path)
    server, _ = zmq.auth.load_certificate(keys / "server.key")
    curve = {name: {"curve_server_key": server, "curve_client_keypair":
                    zmq.auth.load_certificate(keys / f"{name}.key_secret")}
             for name in ("alice", "mallory")}
    stderr = (tmp_path / "monitor.err").open("w")
    proc, ready = _simulator(tmp_path, "--count", "2", "--curve-secret",
                             str(keys / "server.key_secret"), "--curve-clients", str(clients),
                             "--operators", str(operators), stderr=stderr)
    try:
        with AlertClient(ready["publish"], replay_endpoint=ready["replay"],
                         **curve["mallory"]) as client:
            events = _collect(client, lambda ev: len(_alerts(ev, "detection")) == 2)
            target = _alerts(events, "detection")[0]["id"]
            with VerdictConnection(ready["replay"], **curve["mallory"]) as mallory, \
                    pytest.raises(VerdictRefused) as refused:
                send_verdict(mallory, target, "rejected", operator="alice")
            assert refused.value.code == "not_operator"
            assert read_all(tmp_path / "log.db", kinds=("validation",)) == []  # nothing changed
            with VerdictConnection(ready["replay"], **curve["alice"]) as alice:
                sent = send_verdict(alice, target, "confirmed", operator="someone else")
            assert sent["operator"] == "alice"  # named by her key, not by what she claims
            heard = _alerts(_collect(client, lambda ev: _alerts(ev, "validation")),
                            "validation")
            assert heard == [sent]
    finally:
        _stop(proc)
        stderr.close()
    assert read_all(tmp_path / "log.db", kinds=("validation",)) == [sent]
    logged = (tmp_path / "monitor.err").read_text()
    mallory_key = zmq.auth.load_certificate(keys / "mallory.key")[0].decode()
    assert "verdict refused [not_operator]" in logged and mallory_key in logged


def test_operators_need_curve_and_a_bus_on_the_network_without_keys_takes_no_verdicts(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="operators needs CURVE"):
        AlertBus.from_config({"operators": str(tmp_path)}, station="st")
    with AlertBus("tcp://0.0.0.0:*", station="st", log_path=tmp_path / "log.db",
                  replay_endpoint="tcp://0.0.0.0:*", allow_insecure=True) as bus:
        (target,) = _publish_detections(bus, [datetime.now(UTC)])
        port = bus.replay_endpoint.rsplit(":", 1)[1]
        with VerdictConnection(f"tcp://127.0.0.1:{port}") as monitor, \
                pytest.raises(VerdictRefused) as refused:
            send_verdict(monitor, target, "confirmed")
        assert refused.value.code == "not_operator"
        assert bus.stats()["validation"]["refused"] == 1
    assert read_all(tmp_path / "log.db", kinds=("validation",)) == []


def test_detections_pruned_by_retention_wait_no_more() -> None:
    store = VerdictStore(max_waiting=2)
    now = datetime.now(UTC)
    for k, age_days in enumerate((40, 35, 1)):  # the oldest is pushed out of the table
        store.record("detection", {"id": f"d{k}", "start_utc": utc_iso(
            now - timedelta(days=age_days))})
    assert store.stats(now.timestamp())["waiting"] == 3
    store.forget_before((now - timedelta(days=30)).timestamp())  # retention_days = 30
    stats = store.stats(now.timestamp())
    assert stats["waiting"] == 1 and 86_000 < stats["oldest_waiting_s"] < 87_000
