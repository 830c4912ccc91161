"""The fleet view: several monitors' states kept apart, their alerts merged naming the
station, lost/stopped per station, the stations read from --connect or a [fleet] table,
and a run against real PUB sockets."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zmq
import zmq.auth
from rich.console import Console
from test_dashboard import _detection, _health

from pamlive.alerts.client import BusEvent
from pamlive.alerts.keys import make_keypair
from pamlive.cli import main as cli_main
from pamlive.dashboard.fleet import MAX_ALERTS, FleetState
from pamlive.dashboard.fleet_app import run_fleet
from pamlive.dashboard.fleet_views import render_fleet
from pamlive.dashboard.stations import Station, stations_from_args, stations_from_toml
from pamlive.errors import ConfigError

NOW = datetime.now(UTC)


def _fleet(*names: str | None) -> FleetState:
    return FleetState.watching(
        [Station(f"tcp://10.0.0.{i}:5556", name) for i, name in enumerate(names, 1)], 0.0)


def _det(run: str, seq: int, start: datetime, *, station: str = "buoy-7",
         cls: str = "right_whale", score: float = 0.93, **extra: object) -> BusEvent:
    body = _detection(seq, cls=cls, score=score, start=start) | {
        "run_id": run, "station": station, "id": f"{run}:{cls}:{seq}", **extra}
    return BusEvent("message", f"detection.{cls}", body)


def _health_of(run: str, seq: int, station: str, status: str = "ok", **extra: object) -> BusEvent:
    return BusEvent("message", "health",
                    _health(seq, status) | {"run_id": run, "station": station, **extra})


def _screen(fleet: FleetState, now: float, width: int = 140, height: int = 30) -> str:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(render_fleet(fleet, now, height, width))
    return console.export_text()


def _station_row(text: str, name: str) -> str:
    """The stations panel's row for ``name``, without the panel's borders."""
    return next(ln.strip("│ ") for ln in text.splitlines() if ln.strip("│ ").startswith(name))


def _alert_rows(text: str) -> list[str]:
    """The merged list's rows, top to bottom, without the panel's borders."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if "detections, all stations" in ln) + 2
    return [ln.strip("│ ") for ln in lines[start:]
            if ln.strip("│ ╰─╯") and not ln.startswith("╰")]  # the border holds the keys


def test_alerts_merge_newest_start_first_each_naming_its_station() -> None:
    fleet = _fleet("north", None)
    fleet.apply(1, _health_of("r2", 1, station="buoy-south"), 1.0)  # named by its monitor
    fleet.apply(0, _det("r1", 1, NOW - timedelta(seconds=30)), 1.0)
    fleet.apply(1, _det("r2", 2, NOW - timedelta(seconds=10), station="buoy-south",
                        cls="humpback", score=0.71), 1.5)
    # healed history arrives late but is listed by when the call started
    fleet.apply(0, BusEvent("replayed", "detection.right_whale",
                            _det("r1", 2, NOW - timedelta(seconds=60)).body), 2.0)
    assert [(a.name, a.row.class_name, a.row.score) for a in fleet.alerts] == [
        ("buoy-south", "humpback", 0.71), ("north", "right_whale", 0.93),
        ("north", "right_whale", 0.93)]
    assert [a.row.replayed for a in fleet.alerts] == [False, False, True]
    assert [v.state.detections_total for v in fleet.views] == [2, 1]  # kept apart
    rows = _alert_rows(_screen(fleet, 2.0))
    assert len(rows) == 3 and "buoy-south" in rows[0] and "humpback" in rows[0]
    assert all("north" in ln and "right_whale" in ln for ln in rows[1:])
    assert "replayed" in rows[2] and "replayed" not in rows[1]


def test_a_lost_station_reads_lost_while_the_others_stay_ok() -> None:
    fleet = _fleet("north", "south", "east")
    for i, name in enumerate(("north", "south", "east")):
        fleet.apply(i, _health_of(f"r{i}", 1, name), 1.0)
    fleet.apply(1, BusEvent("lost", "heartbeat", {"run_id": "r1", "silent_s": 5.1}), 6.1)
    fleet.apply(2, _health_of("r2", 2, "east", final=True), 6.1)  # a clean stop
    fleet.apply(2, BusEvent("stopped", "health", {"run_id": "r2", "reason": "signal"}), 6.1)
    fleet.apply(0, _health_of("r0", 7, "north", "degraded", flags=["clips.drops"]), 7.0)
    assert [v.status() for v in fleet.views] == ["DEGRADED", "LOST", "STOPPED"]
    text = _screen(fleet, 8.0)
    row = {name: _station_row(text, name) for name in ("north", "south", "east")}
    assert "DEGRADED" in row["north"] and "clips.drops" in row["north"]
    assert "LOST 7 s" in row["south"] and "OK" not in row["south"]
    assert "STOPPED" in row["east"] and "LOST" not in row["east"]
    assert "NOT LISTENING: south LOST" in text and "1/3 stations listening" in text
    fleet.apply(1, BusEvent("recovered", "heartbeat", {"silent_s": 9.0}), 10.0)
    fleet.apply(1, _health_of("r1", 9, "south"), 10.0)
    assert fleet.views[1].status() == "OK" and "NOT LISTENING" not in _screen(fleet, 10.0)


def test_row_shows_last_detection_position_and_waiting_verdicts() -> None:
    fleet = _fleet("north", "south")
    fleet.apply(0, _health_of("r0", 1, "north", validation={"waiting": 3,
                                                          "oldest_age_s": 40.0}), 1.0)
    fleet.apply(0, _det("r0", 2, NOW - timedelta(seconds=5), score=0.88,
                        position={"lat": 41.5, "lon": -70.25}), 1.0)
    fleet.apply(1, _health_of("r1", 1, "south"), 1.0)
    assert fleet.views[0].waiting_verdicts() == 3 and fleet.views[1].waiting_verdicts() is None
    text = _screen(fleet, 1.5)
    north, south = _station_row(text, "north"), _station_row(text, "south")
    assert "right_whale 0.88" in north and "41.500N 70.250W" in north
    assert north.endswith(" 3") and south.endswith("—")
    assert "01:02:05" in north  # uptime from the station's own health


def test_a_bearing_that_follows_its_detection_reaches_the_merged_row() -> None:
    fleet = _fleet("north", "south")
    det = _det("r0", 1, NOW - timedelta(seconds=4))
    assert det.body is not None
    del det.body["bearing_deg"]  # an array's bearing is its own, later, message
    fleet.apply(0, det, 1.0)
    fleet.apply(1, _det("r1", 1, NOW - timedelta(seconds=9)), 1.0)
    selected = fleet.move_selection(1)
    assert selected is not None and selected.row.bearing_deg is None
    bearing = {key: det.body[key] for key in ("run_id", "station", "class", "start_sample")}
    fleet.apply(1, BusEvent("message", "bearing.right_whale",  # the same key at another station
                            bearing | {"run_id": "r1", "seq": 2, "bearing_deg": 10.0}), 2.0)
    assert [a.row.bearing_deg for a in fleet.alerts] == [None, 10.0]
    fleet.apply(0, BusEvent("message", "bearing.right_whale",
                            bearing | {"seq": 2, "bearing_deg": 250.0,
                                       "bearing_uncertainty_deg": 4.0}), 2.0)
    assert [a.row.bearing_deg for a in fleet.alerts] == [250.0, 10.0]
    assert fleet.selected is fleet.alerts[0]  # the selection stays on its alert
    assert "250° ±4" in _alert_rows(_screen(fleet, 2.0))[0]


def test_whale_banner_names_the_station_and_rings_once() -> None:
    fleet = _fleet("north", "south")
    fleet.apply(1, _det("r1", 1, NOW - timedelta(seconds=2)), 1.0)
    assert fleet.take_bell() and not fleet.take_bell()
    assert "▲ south: RIGHT WHALE" in _screen(fleet, 1.0)


def test_the_selection_follows_its_alert_and_routes_to_its_station() -> None:
    fleet = _fleet("north", "south")
    assert fleet.move_selection(1) is None and fleet.verdict_target() is None
    fleet.apply(0, _det("r0", 1, NOW - timedelta(seconds=20)), 1.0)
    fleet.apply(1, _det("r1", 1, NOW - timedelta(seconds=10)), 1.0)
    assert fleet.move_selection(1).name == "south"  # none selected: the newest
    assert fleet.move_selection(1).name == "north"
    fleet.apply(1, _det("r1", 2, NOW - timedelta(seconds=1)), 2.0)  # above the selection
    assert fleet.selected is not None and fleet.selected.name == "north"
    station, detection_id = fleet.verdict_target()
    assert station.endpoint == "tcp://10.0.0.1:5556" and detection_id == "r0:right_whale:1"
    assert fleet.move_selection(5).name == "north"  # clamped at the oldest
    assert "reverse" in repr(render_fleet(fleet, 2.0).get("alerts").renderable.renderable
                             .rows[2].style)


def test_the_merged_list_is_bounded() -> None:
    fleet = _fleet("north")
    for seq in range(1, MAX_ALERTS + 11):
        fleet.apply(0, _det("r0", seq, NOW - timedelta(seconds=MAX_ALERTS + 20 - seq)), 1.0)
    assert len(fleet.alerts) == MAX_ALERTS
    assert fleet.alerts[0].detection_id == f"r0:right_whale:{MAX_ALERTS + 10}"


def test_stations_from_repeated_connect() -> None:
    stations = stations_from_args(["north=tcp://10.0.0.1:5556", "tcp://10.0.0.2:5556"],
                                  ["tcp://10.0.0.1:5557", "tcp://10.0.0.2:5557"])
    assert [(s.name, s.endpoint, s.replay) for s in stations] == [
        ("north", "tcp://10.0.0.1:5556", "tcp://10.0.0.1:5557"),
        (None, "tcp://10.0.0.2:5556", "tcp://10.0.0.2:5557")]
    with pytest.raises(ConfigError, match="--replay once per --connect"):
        stations_from_args(["tcp://a:1", "tcp://b:1"], ["tcp://a:2"])
    with pytest.raises(ConfigError, match="endpoint given twice"):
        stations_from_args(["tcp://a:1", "x=tcp://a:1"])
    with pytest.raises(ConfigError, match="IPv6"):
        stations_from_args(["tcp://a:1", "tcp://[::1]:5556"])


def test_stations_from_a_fleet_table_with_keys(tmp_path: Path) -> None:
    server_public, _ = make_keypair(tmp_path / "keys", "north")
    _, client_secret = make_keypair(tmp_path / "keys", "operator")
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(
        '[fleet.north]\nconnect = "tcp://10.0.0.1:5556"\nreplay = "tcp://10.0.0.1:5557"\n'
        'server_key = "keys/north.key"\nclient_key = "keys/operator.key_secret"\n'
        '[fleet.south]\nconnect = "tcp://10.0.0.2:5556"\n')
    north, south = stations_from_toml(fleet_file)
    assert (north.name, north.replay, south.name) == ("north", "tcp://10.0.0.1:5557", "south")
    assert north.server_key == zmq.auth.load_certificate(server_public)[0]
    assert north.client_keypair == zmq.auth.load_certificate(client_secret)
    assert south.server_key is None and south.client_keypair is None
    fleet_file.write_text('[fleet.north]\nconnect = "tcp://a:1"\nport = 5 \n')
    with pytest.raises(ConfigError, match=r"\[fleet.north\]: unknown key\(s\) port"):
        stations_from_toml(fleet_file)


def test_dashboard_command_refuses_fleet_with_connect_in_one_line(tmp_path, capsys) -> None:
    assert cli_main(["dashboard", "--fleet", str(tmp_path / "f.toml"), "--connect",
                     "tcp://127.0.0.1:5556"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fleet" in err


def test_run_fleet_against_real_pub_sockets_shows_every_station() -> None:
    ctx = zmq.Context.instance()
    pubs = [ctx.socket(zmq.PUB) for _ in range(2)]
    ports = [pub.bind_to_random_port("tcp://127.0.0.1") for pub in pubs]
    console = Console(record=True, width=140, height=30, file=io.StringIO(),
                      force_terminal=True)
    stop = threading.Event()
    stations = [Station(f"tcp://127.0.0.1:{p}", name) for p, name in zip(ports, ("north", None),
                                                                         strict=True)]
    dash = threading.Thread(target=run_fleet, args=(stations,),
                            kwargs={"console": console, "stop_event": stop, "bell": False})
    dash.start()
    try:
        for seq in range(1, 11):  # until the subscriptions have surely propagated
            for i, pub in enumerate(pubs):
                pub.send_multipart([b"heartbeat", json.dumps({"run_id": f"r{i}",
                                                              "seq": seq}).encode()])
            time.sleep(0.05)
        for i, pub in enumerate(pubs):
            pub.send_multipart([b"health", json.dumps(
                _health_of(f"r{i}", 11, f"buoy-{i}").body).encode()])
            pub.send_multipart([b"detection.right_whale", json.dumps(
                _det(f"r{i}", 12, NOW, station=f"buoy-{i}", score=0.5 + i / 10).body).encode()])
        time.sleep(1.0)
    finally:
        stop.set()
        dash.join(10)
        for pub in pubs:
            pub.close(linger=0)
    text = console.export_text()
    assert not dash.is_alive()
    assert "north" in text and "buoy-1" in text and "2/2 stations listening" in text
    assert "0.50" in text and "0.60" in text


def _station_config(tmp_path: Path, name: str, seed: int) -> Path:
    """The demo's config as station ``name``: its own data folder, seed, calls every ~4 s
    of audio played at twice real time (detections come sooner; heartbeats, LOST and
    uptime stay wall-clock)."""
    demo = (Path(__file__).parents[1] / "pamlive" / "configs" / "demo.toml").read_text()
    body = (demo.replace('station = "demo"\n', "")
            .replace('kind = "simulator"', 'kind = "simulator"\nspeed = 2.0')
            .replace("call_interval_s = 10.0", "call_interval_s = 4.0")
            .replace("seed = 2013", f"seed = {seed}"))
    path = tmp_path / f"{name}.toml"
    path.write_text(f'station = "{name}"\ndata_dir = "{tmp_path / name}"\n{body}')
    return path


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_fleet_of_three_demos_in_a_terminal_shows_one_lost(tmp_path: Path) -> None:
    """Three real monitors, one fleet dashboard in a real terminal: detections from all
    three naming their station; one killed reads LOST within 10 s while the others update."""
    names = ("north", "south", "east")
    session = f"pamlive-fleet-{os.getpid()}"
    monitors: dict[str, subprocess.Popen] = {}
    dashboard = [sys.executable, "-m", "pamlive", "dashboard", "--no-bell"]
    for seed, name in enumerate(names, 1):
        bus, replay = f"ipc://{tmp_path}/{name}.pub", f"ipc://{tmp_path}/{name}.rep"
        dashboard += ["--connect", f"{name}={bus}", "--replay", replay]
        with open(tmp_path / f"{name}.log", "wb") as log:
            monitors[name] = subprocess.Popen(
                [sys.executable, "-m", "pamlive", "demo", "--headless", "-c",
                 str(_station_config(tmp_path, name, seed)), "--publish", bus,
                 "--replay", replay], stderr=log, stdout=subprocess.DEVNULL)

    def capture() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                              capture_output=True, text=True, check=True).stdout

    def rows() -> dict[str, list[str]]:  # each station's row, split into its columns
        text = capture()
        return {name: _station_row(text, name).split() for name in names
                if f"│  {name}" in text}

    def wait_for(ok: Callable[[dict[str, list[str]]], bool], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok(seen := rows()):
                return seen
            time.sleep(0.2)
        logs = "\n".join((tmp_path / f"{n}.log").read_text()[-500:] for n in names)
        raise AssertionError(f"timed out; screen:\n{capture()}\nmonitors:\n{logs}")

    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "30",
                    shlex.join(dashboard)], env={**os.environ, "TERM": "xterm-256color"},
                   check=True)
    try:
        # columns: name, status, uptime, detections, last detection (UTC, class, score), ...
        wait_for(lambda r: len(r) == 3 and all(row[1] == "OK" and int(row[3]) > 0
                                               for row in r.values()), 120)
        listed = _alert_rows(capture())
        assert all(any(f" {name} " in ln and "right_whale" in ln for ln in listed)
                   for name in names), listed
        monitors["south"].kill()
        killed = time.monotonic()
        before = wait_for(lambda r: r["south"][1] == "LOST", 10)
        assert time.monotonic() - killed < 10
        assert all(before[n][1] == "OK" for n in ("north", "east"))
        after = wait_for(lambda r: all(int(r[n][3]) > int(before[n][3]) and r[n][2] !=
                                       before[n][2] for n in ("north", "east")), 30)
        assert after["south"][1] == "LOST" and after["south"][3] == before["south"][3]
    finally:
        for proc in monitors.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
