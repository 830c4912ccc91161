"""The dashboard: state rules, what the screen shows, and a run against a real PUB socket."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import zmq
from rich.console import Console
from scipy import signal

from pamlive.alerts.client import BusEvent
from pamlive.alerts.schema import detection_body
from pamlive.cli import main as cli_main
from pamlive.dashboard import run_dashboard
from pamlive.dashboard.state import ALARM_HOLD_S, MAX_PENDING_BELLS, DashboardState
from pamlive.dashboard.views import render, spectrogram_pixels
from pamlive.live.spectrum import SPECTRUM_SCHEMA, SpectrumFeed

RUN = "20261124T000000Z-abc"


class Seq:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def _detection(seq: int, *, cls: str = "right_whale", score: float = 0.93,
               start: datetime | None = None, channels=(0, 2)) -> dict:
    start = start or datetime.now(UTC) - timedelta(seconds=3)
    body = detection_body(
        run_id=RUN, station="buoy-7", class_name=cls, score=score,
        scores={"noise": 1 - score, cls: score}, channels=list(channels), start_sample=0,
        end_sample=4000, sample_rate=2000, stream_start_utc=start, model_name="narw-upcall",
        model_version="1.0.0", bearing_deg=123.0,
    )
    body.update(seq=seq, latency_ms=57.0, time_utc=body["start_utc"])
    return body


def _health(seq: int, status: str = "ok") -> dict:
    return {
        "schema": "pamlive.health/1", "run_id": RUN, "seq": seq, "station": "buoy-7",
        "uptime_s": 3725.0, "status": status, "flags": [], "sample_rate": 8000, "channels": 4,
        "stream_time_s": 3720.0,
        "capture": {"callbacks": 10, "frames": 80000, "overflows": 0, "status_flags": 0},
        "ring": {"capacity_s": 30, "fill": 0.12, "overwritten_samples": 0},
        "inference": {"windows": 100, "batches": 20, "queue_fill": 0.03, "mean_batch_ms": 4.0},
        "latency_ms": {"last": 50.0, "median": 42.0, "p95": 88.0},
        "drops": {"ring_samples": 0, "window_queue": 2, "detection_queue": 0, "publish": 0},
        "level_dbfs": [-47.1, -46.0, -12.5, None],
    }


def _spectrum(seq: int, channel: int = 0, tone_band: int = 40) -> dict:
    rows = [[-80.0] * 64 for _ in range(2)]
    for r in rows:
        r[tone_band] = -30.0
    return {"schema": SPECTRUM_SCHEMA, "run_id": RUN, "seq": seq, "channel": channel,
            "sample_rate": 2000, "fmax_hz": 500.0, "row_s": 0.125, "rows": rows}


def _screen(state: DashboardState, now: float) -> str:
    console = Console(record=True, width=120, height=40, file=io.StringIO())
    console.print(render(state, now, 40))
    return console.export_text()


def _fed_state() -> tuple[DashboardState, Seq]:
    seq = Seq()
    state = DashboardState(endpoint="tcp://buoy:5556", channel=0)
    state.apply(BusEvent("message", "heartbeat", {"run_id": RUN, "seq": seq()}), 1.0)
    state.apply(BusEvent("message", "health", _health(seq())), 1.0)
    state.apply(BusEvent("message", "spectrum", _spectrum(seq())), 1.0)
    state.apply(BusEvent("message", "detection.right_whale", _detection(seq())), 1.0)
    return state, seq


def test_screen_shows_levels_detection_health_and_alarm():
    state, _ = _fed_state()
    text = _screen(state, 1.2)
    assert "-47.1 dBFS" in text and "-12.5 dBFS" in text and "no audio" in text
    row = next(line for line in text.splitlines() if "right_whale" in line and "0.93" in line)
    assert "0,2" in row and "123°" in row and "57 ms" in row
    assert "RIGHT WHALE" in text and "score 0.93" in text  # the banner
    assert "OK" in text and "median 42 ms, p95 88 ms" in text and "01:02:05" in text
    assert "window_queue 2" in text  # drops are named
    assert "12.0 %" in text  # ring fill
    assert "buoy-7" in text and "tcp://buoy:5556" in text


def test_new_right_whale_rings_once_and_the_alarm_expires():
    state, seq = _fed_state()
    assert state.take_bell() and not state.take_bell()
    assert state.alarm_active(1.0 + ALARM_HOLD_S - 0.1)
    assert not state.alarm_active(1.0 + ALARM_HOLD_S + 0.1)
    assert "RIGHT WHALE" not in _screen(state, 1.0 + ALARM_HOLD_S + 1)
    state.apply(BusEvent("message", "detection.noise", _detection(seq(), cls="noise")), 2.0)
    assert not state.take_bell()  # only right whales alarm
    for _ in range(10):  # a burst rings a few times, not ten
        state.apply(BusEvent("message", "detection.right_whale", _detection(seq())), 3.0)
    assert sum(state.take_bell() for _ in range(20)) == MAX_PENDING_BELLS


def test_replayed_history_is_listed_without_alarm_but_a_fresh_healed_one_alarms():
    state = DashboardState()
    old = _detection(5, start=datetime.now(UTC) - timedelta(hours=2))
    state.apply(BusEvent("replayed", "detection.right_whale", old), 1.0)
    assert not state.take_bell() and not state.alarm_active(1.0)
    assert "replayed" in _screen(state, 1.0) and state.healed == 1
    state.apply(BusEvent("replayed", "detection.right_whale", _detection(6)), 2.0)
    assert state.take_bell() and state.alarm_active(2.0)


def test_malformed_message_is_counted_shown_and_loses_nothing():
    state, seq = _fed_state()
    state.apply(BusEvent("malformed", "detection.right_whale", None,
                         "Expecting value: line 1 column 2 (char 1)"), 2.0)
    # a message the client accepted but the dashboard cannot use is malformed too
    bad_spectrum = _spectrum(seq()) | {"rows": "loud"}
    state.apply(BusEvent("message", "spectrum", bad_spectrum), 2.0)
    assert state.malformed == 2
    text = _screen(state, 2.0)
    assert "malformed  2" in text
    assert "'spectrum'" in text and "rows" in text  # the last error, in one line
    assert "right_whale" in text and len(state.detections) == 1  # nothing lost
    for broken in ({"ring": 5}, {"level_dbfs": ["loud"]}, {"uptime_s": "long"}):
        state.apply(BusEvent("message", "health", _health(seq()) | broken), 2.5)
    assert state.malformed == 5 and "OK" in _screen(state, 2.5)  # the last good health stays
    state.apply(BusEvent("message", "detection.right_whale", _detection(seq())), 3.0)
    assert len(state.detections) == 2


def test_lost_and_deaf_monitor_take_the_banner():
    state, seq = _fed_state()
    state.apply(BusEvent("lost", "heartbeat", {"run_id": RUN, "silent_s": 5.2}), 2.0)
    text = _screen(state, 2.0)
    assert "MONITOR LOST" in text and "LOST (1×)" in text
    state.apply(BusEvent("recovered", "heartbeat", {"silent_s": 7.0}), 3.0)
    text = _screen(state, 30.0)
    assert "MONITOR LOST" not in text and "connected (was lost 1×)" in text
    state.apply(BusEvent("message", "health", _health(seq(), status="deaf")), 31.0)
    assert "MONITOR DEAF" in _screen(state, 31.0)


def test_unhealed_gap_versus_late_join():
    state = DashboardState()
    state.apply(BusEvent("gap", "", {"after": (RUN, 0), "until": (RUN, 9)}, "no replay"), 1.0)
    assert state.joined_late_unfetched and state.unhealed_gaps == 0
    state.apply(BusEvent("message", "heartbeat", {"run_id": RUN, "seq": 9}), 1.0)
    state.apply(BusEvent("gap", "", {"after": (RUN, 9), "until": (RUN, 20)},
                         "missed detections; no replay endpoint"), 2.0)
    assert state.unhealed_gaps == 1
    assert "1 NOT healed" in _screen(state, 2.0)


def test_spectrum_of_another_channel_is_not_drawn():
    state = DashboardState(channel=2)
    state.apply(BusEvent("message", "spectrum", _spectrum(1, channel=0)), 1.0)
    assert not state.spectrum_rows
    assert "channel 2 is not published; the monitor sends 0" in _screen(state, 1.0)


def test_spectrogram_pixels_put_a_tone_at_its_height_and_new_rows_at_the_right():
    rows = []
    for t in range(30):
        r = [-90.0 + (t % 3)] * 64
        r[48] = -20.0  # band 48 of 64: 375-383 Hz of 0-500 Hz
        rows.append(r)
    px = spectrogram_pixels(rows, columns=50, pixels=32)
    assert (px[:, :20] == -1).all() and (px[:, 20:] >= 0).all()  # 30 rows, right-aligned
    brightest = int(np.argmax(px[:, -1]))
    assert brightest == int((1 - 48.5 / 64) * 32)  # top pixel = fmax
    assert px[brightest, -1] == px.max() and np.median(px[:, 20:]) < px.max() / 2


def test_spectrum_feed_matches_scipy_and_ignores_block_sizes():
    fs = 2000
    t = np.arange(fs * 4) / fs
    x = np.stack([0.5 * np.sin(2 * np.pi * 150 * t), 0.01 * np.sin(2 * np.pi * 320 * t)], 1)
    x = (x + 1e-3 * np.random.default_rng(0).standard_normal(x.shape)).astype(np.float32)
    whole = SpectrumFeed(fs, 2).push(x)
    feed, parts, i = SpectrumFeed(fs, 2), [], 0
    for n in [1, 77, 500, 3, 2000, 999, 4420]:
        parts += feed.push(x[i : i + n])
        i += n
    assert i == len(x) and [b["rows"] for b in parts] == [b["rows"] for b in whole]
    rows = np.array([r for b in whole if b["channel"] == 0 for r in b["rows"]])
    fmax, bands = whole[0]["fmax_hz"], rows.shape[1]
    assert np.argmax(rows.mean(0)) == int(150 / (fmax / bands))
    # independent reference: scipy's power spectrum (one-sided, x2) averaged into the bands
    nfft, hop = 512, 250
    f, _, p = signal.spectrogram(x[:, 0], fs, window=np.hanning(nfft), nperseg=nfft,
                                 noverlap=nfft - hop, detrend=False, scaling="spectrum")
    p = p[: len(f[f <= fmax])] * 2  # full-scale sine -> 0 dB, as the feed promises
    edges = np.searchsorted(f, np.linspace(0, fmax, bands + 1)[:-1])
    counts = np.diff(np.append(edges, len(p)))[:, None]
    ref = 10 * np.log10(np.add.reduceat(p, edges, axis=0) / counts)
    np.testing.assert_allclose(rows[:, 1:], ref.T[: len(rows), 1:], atol=0.06)
    assert rows[:, np.argmax(rows.mean(0))].mean() == pytest.approx(20 * np.log10(0.5) - 3, abs=3)


def test_run_dashboard_against_a_real_pub_socket_counts_a_malformed_frame():
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    terminal = io.StringIO()
    console = Console(record=True, width=120, height=40, file=terminal, force_terminal=True)
    stop = threading.Event()
    result: list[int] = []
    dash = threading.Thread(target=lambda: result.append(run_dashboard(
        f"tcp://127.0.0.1:{port}", console=console, stop_event=stop)))
    dash.start()
    seq = Seq()
    try:
        for _ in range(10):  # heartbeats until the subscription has surely propagated
            pub.send_multipart([b"heartbeat", json.dumps({"run_id": RUN, "seq": seq()}).encode()])
            time.sleep(0.05)
        pub.send_multipart([b"health", json.dumps(_health(seq())).encode()])
        pub.send_multipart([b"spectrum", json.dumps(_spectrum(seq())).encode()])
        pub.send_multipart([b"detection.right_whale", json.dumps(_detection(seq())).encode()])
        pub.send_multipart([b"detection.right_whale", b"{not json"])
        pub.send_multipart([b"heartbeat", json.dumps({"run_id": RUN, "seq": seq()}).encode()])
        time.sleep(1.0)
    finally:
        stop.set()
        dash.join(10)
        pub.close(linger=0)
    assert result == [0]
    text = console.export_text()
    assert "right_whale" in text and "0.93" in text
    assert "malformed  1" in text and "Expecting property name" in text
    assert terminal.getvalue().count("\a") == 1  # one bell for the one new right whale


def test_dashboard_command_rejects_a_bad_endpoint_in_one_line(capsys):
    assert cli_main(["dashboard", "--connect", "buoy-7:5556"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--connect" in err and "buoy-7:5556" in err


@pytest.mark.slow
def test_dashboard_command_reads_a_curve_secured_monitor(tmp_path, capsys):
    from pamlive.alerts.bus import AlertBus
    from pamlive.alerts.keys import make_keypair
    from pamlive.alerts.security import CurveConfig
    from pamlive.dashboard import main

    server_public, server_secret = make_keypair(tmp_path / "server", "monitor")
    client_public, client_secret = make_keypair(tmp_path / "client", "dashboard")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / client_public.name).write_bytes(client_public.read_bytes())
    # the bus picks its own free port: a probe socket's port, closed and bound again, was
    # still held by ZeroMQ's asynchronous close once in CI ("Address already in use")
    bus = AlertBus("tcp://127.0.0.1:*", station="remote-buoy",
                   curve=CurveConfig(server_secret, allowed))
    bus.start()

    def publish_later() -> None:
        time.sleep(1.0)  # after the CURVE handshake and subscription
        body = _detection(1)
        for key in ("seq", "latency_ms", "time_utc", "run_id"):
            body.pop(key)
        bus.publish_detection(body | {"run_id": bus.run_id}, ready_monotonic=time.monotonic())

    publisher = threading.Thread(target=publish_later)
    publisher.start()
    try:
        code = main(["--connect", bus.endpoint, "--server-key", str(server_public),
                     "--client-key", str(client_secret), "--duration", "2.5", "--no-bell"])
    finally:
        publisher.join()
        bus.close()
    assert code == 0
    out = capsys.readouterr().out
    assert "remote-buoy" in out and "right_whale" in out and "0.93" in out


def test_the_onset_raises_the_alarm_and_its_closed_detection_only_updates_it():
    state = DashboardState()
    onset = _detection(1, score=0.91) | {"schema": "pamlive.onset/1"}
    state.apply(BusEvent("message", "onset.right_whale", onset), 1.0)
    assert state.take_bell() and not state.take_bell()  # the alarm rings at the onset
    assert state.alarm_active(1.0) and "CALLING" in state.alarm_text and "0.91" in state.alarm_text
    assert state.detections_total == 0 and state.onsets_total == 1  # the list shows closed ones
    state.apply(BusEvent("message", "detection.right_whale", _detection(2, score=0.97)), 3.0)
    assert not state.take_bell()  # the same call (same id): no second bell
    assert state.detections_total == 1 and "0.97" in state.alarm_text
    assert state.alarm_active(3.0 + ALARM_HOLD_S - 0.1)
    other = _detection(3) | {"id": "another-call"}  # no onset seen (e.g. an older monitor)
    state.apply(BusEvent("message", "detection.right_whale", other), 4.0)
    assert state.take_bell()


def test_an_ensemble_shows_each_members_cpu_share_and_latency():
    state, seq = _fed_state()
    members = [{"name": "narw-upcall", "windows": 90, "errors": 0, "missing": 0,
                "cpu_s": 0.3, "cpu_share": 0.23, "latency_ms": {"median": 2.0, "p95": 5.0}},
               {"name": "koogu-narw", "windows": 180, "errors": 4, "missing": 7, "cpu_s": 1.0,
                "cpu_share": 0.77, "latency_ms": {"median": 4.0, "p95": 9.0}}]
    state.apply(BusEvent("message", "health", {**_health(seq()),
                                               "ensemble": {"members": members}}), 1.0)
    lines = _screen(state, 1.2).splitlines()
    narw = next(line for line in lines if "narw-upcall" in line)
    koogu = next(i for i, line in enumerate(lines) if "koogu-narw" in line)
    assert "CPU 23 %, 2 ms" in narw and "lost" not in lines[lines.index(narw) + 1]
    assert "CPU 77 %, 4 ms" in lines[koogu] and "4 lost, 7 missing" in lines[koogu + 1]
