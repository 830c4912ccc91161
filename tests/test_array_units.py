"""[array] settings, channel agreement, NMEA heading, the bearing worker, the bearing
fields of detection bodies and Raven tables."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from pamlive.alerts.schema import validate_bearing, validate_detection
from pamlive.array.agreement import ChannelAgreement
from pamlive.array.bearing import BearingEstimator, BearingResult
from pamlive.array.heading import HeadingTrack, parse_heading
from pamlive.array.offline import BEARING_KEY
from pamlive.array.worker import ArrayStage, bearing_body
from pamlive.config import load_config, parse_array
from pamlive.detection import Detection
from pamlive.errors import ConfigError
from pamlive.raven import (
    BEARING_COLUMNS,
    COLUMNS,
    EXTRA_COLUMNS,
    read_selection_table,
    write_selection_table,
)

FS = 8000
SQUARE = [[0, 0], [40, 0], [0, 40], [40, 40]]


def _nmea(body: str) -> str:
    checksum = 0
    for ch in body:
        checksum ^= ord(ch)
    return f"${body}*{checksum:02X}"


def _det(channels: list[int], start: int = 8000, end: int = 32000,
         cls: str = "right_whale") -> Detection:
    return Detection(cls, 0.95, {cls: 0.95}, channels, start, end, FS, 3, channels[0],
                     low_freq=47.0, high_freq=357.0)


def _plane_wave(positions, bearing_deg: float, n: int = 16000, seed: int = 0) -> np.ndarray:
    """A band-limited noise burst arriving from ``bearing_deg`` (FFT phase shifts),
    with independent noise on each element."""
    rng = np.random.default_rng(seed)
    src = rng.standard_normal(n)
    spec = np.fft.rfft(src, 2 * n)
    f = np.fft.rfftfreq(2 * n, 1 / FS)
    spec[(f < 80) | (f > 230)] = 0
    b = np.radians(bearing_deg)
    lead = np.asarray(positions, float)[:, :2] @ np.array([np.sin(b), np.cos(b)]) / 1500.0
    x = np.stack([np.fft.irfft(spec * np.exp(2j * np.pi * f * t), 2 * n)[:n] for t in lead], 1)
    return (x + 0.2 * x.std() * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.mark.parametrize("table, message", [
    ({"positions": [[0, 0]]}, "at least two"),
    ({"positions": [[0, 0], [0, 0]]}, "one place"),
    ({"positions": SQUARE, "sound_speed": -1}, "sound_speed must be positive"),
    ({"positions": SQUARE, "heading_source": "fixed"}, "needs heading_deg"),
    ({"positions": SQUARE, "heading_source": "gyro"}, "heading_source"),
    ({"positions": SQUARE, "min_channels": {"right_whale": 5}}, "min_channels.right_whale"),
    ({"positions": SQUARE, "bogus": 1}, "unknown setting [array] bogus"),
    ({"positions": SQUARE, "queue": 2.5}, "queue must be int"),
])
def test_bad_array_settings_are_one_clear_line(table, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_array(table)


def test_array_section_is_checked_when_the_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[array]\npositions = [[0, 0], [0, -100]]\nheading_source = 'fixed'\n"
                    "heading_deg = 400\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.toml: \[array\] heading_deg"):
        load_config(path)
    path.write_text("[array]\npositions = [[0, 0], [0, -100, 2.5]]\n", encoding="utf-8")
    cfg = load_config(path)
    settings = cfg.array
    assert settings is not None and settings.positions[1] == [0.0, -100.0, 2.5]


def test_k_of_n_rule_counts_what_it_refuses() -> None:
    rule = ChannelAgreement({"right_whale": 2})
    assert rule.accepts(_det([0, 2]))
    assert not rule.accepts(_det([3]))
    assert rule.accepts(_det([1], cls="other"))  # classes without a rule always count
    assert rule.rejected == {"right_whale": 1}


def test_heading_from_hdt_and_hdg_sentences() -> None:
    assert parse_heading(_nmea("HEHDT,274.07,T")) == pytest.approx(274.07)
    # magnetic 98.3, deviation 1.0 E, variation 12.6 W: true = 98.3 + 1.0 - 12.6
    assert parse_heading(_nmea("HCHDG,98.3,1.0,E,12.6,W")) == pytest.approx(86.7)
    assert parse_heading(_nmea("HCHDG,359.0,,,2.0,E")) == pytest.approx(1.0)
    assert parse_heading("$HEHDT,274.07,T*00") is None  # bad checksum
    assert parse_heading(_nmea("GPGLL,4916.45,N,12311.12,W,225444,A")) is None
    clock = [1000.0]
    track = HeadingTrack(lambda: clock[0], max_age_s=5.0)
    track.feed(_nmea("HEHDT,10.0,T"))
    clock[0] = 1002.0
    track.feed(_nmea("HEHDT,20.0,T"))
    assert track.at(1000.4) == 10.0 and track.at(1001.8) == 20.0
    assert track.at(1010.0) is None


def test_fixed_heading_turns_bearings_to_true() -> None:
    settings = parse_array({"positions": SQUARE, "heading_source": "fixed", "heading_deg": 90})
    assert settings is not None
    result = BearingEstimator(settings).estimate(_plane_wave(SQUARE, 30.0), FS, (80, 230),
                                                 utc_s=0.0)
    fields = result.fields()
    assert fields["bearing_reference"] == "true"
    assert fields["bearing_deg"] == pytest.approx(120.0, abs=0.5)
    assert fields["relative_bearing_deg"] == pytest.approx(30.0, abs=0.5)
    assert fields["tdoa_consistent"] is True and "ambiguous" not in fields


def test_towed_line_body_reports_the_ambiguity() -> None:
    line = [[0, 0], [0, -100]]
    settings = parse_array({"positions": line})
    assert settings is not None
    fields = BearingEstimator(settings).estimate(_plane_wave(line, 250.0), FS, (80, 230)).fields()
    assert fields["ambiguous"] is True
    assert sorted(fields["bearing_candidates_deg"]) == pytest.approx([110.0, 250.0], abs=1.0)
    assert fields["cone_deg"] == pytest.approx(110.0, abs=1.0)


def test_detection_schema_takes_the_bearing_fields_and_rejects_bad_ones() -> None:
    settings = parse_array({"positions": [[0, 0], [0, -100]]})
    assert settings is not None
    result = BearingEstimator(settings).estimate(_plane_wave([[0, 0], [0, -100]], 60.0), FS,
                                                 (80, 230))
    body = {"schema": "pamlive.detection/1", "run_id": "r", "seq": 3, "station": "s",
            "class": "right_whale", "score": 0.9, "scores": {"right_whale": 0.9},
            "channels": [0, 1], "start_utc": "2026-01-01T00:00:00.000Z",
            "end_utc": "2026-01-01T00:00:03.000Z", "start_sample": 0, "end_sample": 24000,
            "sample_rate": FS, "model": {"name": "m", "version": "1"}, "latency_ms": 5.0,
            **result.fields()}
    validate_detection(body)
    for bad in ({"ambiguous": "yes"}, {"bearing_candidates_deg": [1.0]},
                {"bearing_uncertainty_deg": float("nan")}, {"bearing_reference": "magnetic"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            validate_detection({**body, **bad})


def test_worker_publishes_bearings_off_the_caller_thread_and_counts_drops() -> None:
    settings = parse_array({"positions": SQUARE, "queue": 2})
    assert settings is not None
    audio = _plane_wave(SQUARE, 200.0, n=40000)
    gate, entered = threading.Event(), threading.Event()
    published: list[tuple[str, BearingResult]] = []

    def fetch(start: int, end: int) -> np.ndarray | None:
        entered.set()
        gate.wait(10.0)  # a slow bearing: the caller must not wait for it
        return audio[start:end] if start < audio.shape[0] else None

    stage = ArrayStage(settings, fetch, lambda det, r, utc: published.append(
        (threading.current_thread().name, r)))
    stage.start()
    det = _det([0, 1, 2, 3], 0, 24000)
    stage.published(det, {}, datetime(2026, 1, 1, tzinfo=UTC))  # as the live engine calls it
    assert entered.wait(10.0)  # the thread holds the first job; the queue has room for 2
    t0 = time.perf_counter()
    accepted = [stage.submit(det, None) for _ in range(4)]
    submitted_in = time.perf_counter() - t0
    assert accepted == [True, True, False, False] and stage.dropped == 2
    assert submitted_in < 0.5
    gate.set()
    deadline = time.monotonic() + 30.0
    while stage.done < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stage.submit(_det([0, 1], 10**7, 10**7 + 100), None)  # audio the ring no longer has
    stage.stop()
    assert stage.done == len(published) == 3 and stage.missing == 1
    assert all(name == "pamlive-bearings" for name, _ in published)
    assert all(r.relative is not None and abs(r.relative.bearing_deg - 200.0) < 1.0
               for _, r in published)
    health = stage.health()
    assert health["dropped"] == stage.dropped and health["bearings"] == stage.done
    assert stage.flags() == ["bearing_drops"] and stage.flags() == []


def test_bearing_message_names_its_detection_and_validates() -> None:
    settings = parse_array({"positions": SQUARE})
    assert settings is not None
    det = _det([0, 1, 2, 3], 0, 16000)
    result = BearingEstimator(settings).for_detection(det, _plane_wave(SQUARE, 45.0))
    body = bearing_body(det, result, run_id="run-1", station="st",
                        start_utc=datetime(2026, 1, 1, tzinfo=UTC))
    assert (body["class"], body["start_sample"], body["start_utc"]) == (
        "right_whale", 0, "2026-01-01T00:00:00.000Z")
    validate_bearing({**body, "seq": 1})
    with pytest.raises(ValueError, match="start_sample"):
        validate_bearing({**body, "seq": 1, "start_sample": -1})


def test_raven_bearing_columns_come_after_the_others(tmp_path: Path) -> None:
    settings = parse_array({"positions": [[0, 0], [0, -100]]})
    assert settings is not None
    with_bearing = _det([0, 1], 0, 16000)
    with_bearing.extra[BEARING_KEY] = BearingEstimator(settings).for_detection(
        with_bearing, _plane_wave([[0, 0], [0, -100]], 60.0))
    without = _det([0], 20000, 36000)
    path = tmp_path / "t.selections.txt"
    write_selection_table(path, [with_bearing, without], bearings=True)
    header = path.read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert header == COLUMNS + EXTRA_COLUMNS + BEARING_COLUMNS
    rows = read_selection_table(path)
    assert float(rows[0]["Cone Angle (deg)"]) == pytest.approx(60.0, abs=1.0)
    assert rows[0]["Ambiguous"] == "yes" and rows[0]["Bearing Reference"] == "array"
    assert sorted(float(c) for c in rows[0]["Bearing Candidates (deg)"].split(",")) == \
        pytest.approx([60.0, 300.0], abs=1.0)
    assert rows[1]["Bearing (deg)"] == ""
    write_selection_table(path, [without])  # no [array]: the contract's columns only
    assert path.read_text(encoding="utf-8").splitlines()[0].split("\t") == COLUMNS + EXTRA_COLUMNS


def test_dashboard_fills_the_bearing_in_when_its_message_arrives() -> None:
    from pamlive.alerts.client import BusEvent
    from pamlive.dashboard.state import DashboardState
    from pamlive.dashboard.views import bearing_text, compass_arrow

    state = DashboardState()
    det = {"run_id": "r", "seq": 1, "class": "right_whale", "score": 0.95,
           "channels": [0, 1], "start_utc": "2026-01-01T00:00:00.000Z", "start_sample": 800,
           "latency_ms": 12.0}
    state.apply(BusEvent("message", "detection.right_whale", det), 1.0)
    state.apply(BusEvent("message", "detection.right_whale",
                         {**det, "seq": 2, "start_sample": 9000}), 1.0)
    assert bearing_text(state.detections[0]) == "—"
    state.apply(BusEvent("message", "bearing.right_whale", {
        "run_id": "r", "seq": 3, "class": "right_whale", "start_sample": 800,
        "bearing_deg": 60.0, "bearing_uncertainty_deg": 1.4, "ambiguous": True,
        "bearing_candidates_deg": [60.0, 300.0], "cone_deg": 60.0}), 2.0)
    older, newer = state.detections[1], state.detections[0]
    assert newer.bearing_deg is None  # a bearing goes to its own detection only
    assert older.bearing_deg == 60.0 and bearing_text(older) == "060°|300° ↗↖"
    assert state.malformed == 0
    assert [compass_arrow(b) for b in (0, 44, 91, 180, 269, 320)] == [
        "↑", "↗", "→", "↓", "←", "↖"]


def test_heading_arrives_through_the_position_feed_over_udp() -> None:
    import socket

    from pamlive.array.live import open_array_stage
    from pamlive.buffers import RingBuffer
    from pamlive.field.position import PositionTrack, UdpNmeaSource

    source = UdpNmeaSource(PositionTrack(100, 30.0, "udp"), "127.0.0.1", 0, time.time)

    class _Bus:
        run_id = "r"

        def publish_bearing(self, body: dict) -> None:
            raise AssertionError("nothing is published here")

    class _Source:
        channels = 4
        start_utc = None

    table = {"positions": SQUARE, "heading_source": "nmea"}
    with pytest.raises(ConfigError, match="needs an NMEA"):
        open_array_stage(parse_array(table), RingBuffer(4, 100), _Bus(), _Source(), "st", None)
    stage = open_array_stage(parse_array(table), RingBuffer(4, 100), _Bus(), _Source(), "st",
                             source)
    assert stage is not None
    source.start()
    try:
        assert source.wait_bound(5.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(f"{_nmea('HEHDT,123.4,T')}\r\n".encode(), ("127.0.0.1", source.port))
        deadline = time.monotonic() + 5.0
        result = None
        while time.monotonic() < deadline:
            result = stage.estimator.estimate(_plane_wave(SQUARE, 10.0), FS, (80, 230),
                                              utc_s=time.time())
            if result.heading_deg is not None:
                break
            time.sleep(0.05)
    finally:
        source.stop()
    assert result is not None and result.heading_deg == pytest.approx(123.4)
    assert result.fields()["bearing_deg"] == pytest.approx(133.4, abs=0.5)
