"""The dashboard with an event model (bats): counts per species and the latest calls, no
banner per call; a score model's screen is unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_dashboard import RUN, Seq, _fed_state, _health, _screen

from pamlive.alerts.client import BusEvent
from pamlive.alerts.schema import call_body, call_summary_body, call_topic
from pamlive.dashboard.state import DashboardState

T0 = datetime(2026, 8, 17, 1, 13, 58, tzinfo=UTC)
RATE = 384000


def _call(seq: int, t_s: float, species: str, prob: float, channel: int = 1) -> dict:
    start = round(t_s * RATE)
    body = call_body(run_id=RUN, station="wood-3", channel=channel, species=species,
                     class_prob=prob, det_prob=0.5, probs={species: prob}, start_sample=start,
                     end_sample=start + 2000, sample_rate=RATE, low_hz=45250.0,
                     high_hz=71800.0, utc_at=lambda s: T0 + timedelta(seconds=s / RATE),
                     model_name="batdetect2", model_version="1.3.1")
    body.update(seq=seq, latency_ms=40.0, time_utc=body["start_utc"])
    return body


def _state_with_calls() -> DashboardState:
    seq = Seq()
    state = DashboardState(endpoint="tcp://wood:5556", channel=0)
    health = _health(seq())
    health["calls"] = {"published": 0, "summaries": 0, "species": {},
                       "channel_windows": {"run": 3, "skipped": 9}, "activity_gate": 0.95}
    state.apply(BusEvent("message", "health", health), 1.0)
    # 01:13:58.x: two pipistrelles and a noctule; the next minute: one more pipistrelle
    for t, species, prob in ((0.1, "Pipistrellus pipistrellus", 0.71),
                             (0.6, "Nyctalus noctula", 0.55),
                             (1.2, "Pipistrellus pipistrellus", 0.93),
                             (2.5, "Pipistrellus pipistrellus", 0.62)):
        state.apply(BusEvent("message", call_topic(species), _call(seq(), t, species, prob)),
                    1.0)
    summary = call_summary_body(run_id=RUN, station="wood-3", start=T0 - timedelta(seconds=58),
                                end=T0 + timedelta(seconds=2),
                                counts={"Pipistrellus pipistrellus": 2, "Nyctalus noctula": 1},
                                max_prob={"Pipistrellus pipistrellus": 0.93,
                                          "Nyctalus noctula": 0.55},
                                partial=False, model_name="batdetect2", model_version="1.3.1")
    summary.update(seq=seq())
    state.apply(BusEvent("message", "summary.calls", summary), 1.0)
    return state


def test_calls_are_counted_per_species_and_listed_without_a_banner():
    state = _state_with_calls()
    board = state.calls
    assert board.total == {"Pipistrellus pipistrellus": 3, "Nyctalus noctula": 1}
    assert board.minute == datetime(2026, 8, 17, 1, 14, tzinfo=UTC)  # 01:13:58 + 2.5 s
    assert board.this_minute == {"Pipistrellus pipistrellus": 1}
    assert not state.alarm_active(1.0) and state.bells_due == 0  # no banner per call
    assert state.malformed == 0
    text = _screen(state, 1.5)
    assert "calls per species (4 in all)" in text and "latest calls" in text
    assert "network: 25 % of 12 windows (gate 0.95)" in text  # the activity gate's share
    assert "detections (" not in text  # the score model's table gives way
    row = next(line.split("││")[0] for line in text.splitlines()
               if "Pipistrellus pipistrellus" in line)
    assert row.split()[3:7] == ["1", "2", "3", "0.93"]  # this minute, last minute, total
    latest = next(line for line in text.splitlines() if "01:14:00.500" in line)
    assert latest.split("││")[1].split()[:5] == [  # newest first, to the ms
        "01:14:00.500", "P.", "pipistrellus", "0.62", "1"]
    assert "45.2–71.8" in latest  # its box in kHz
    assert "01:13" in text and "01:14" in text  # the minute columns are named


def test_a_malformed_call_is_counted_not_drawn():
    state = _state_with_calls()
    bad = _call(99, 3.0, "Nyctalus noctula", 0.5)
    del bad["class_prob"]
    state.apply(BusEvent("message", "call.nyctalus_noctula", bad), 2.0)
    assert state.malformed == 1 and state.calls.total["Nyctalus noctula"] == 1


@pytest.mark.parametrize("with_calls_health", [False, True])
def test_a_score_model_keeps_its_detection_table(with_calls_health):
    state, seq = _fed_state()
    if with_calls_health:  # an event model's monitor says so in its health, before any call
        health = _health(seq())
        health["calls"] = {"published": 0}
        state.apply(BusEvent("message", "health", health), 1.0)
    text = _screen(state, 1.2)
    assert ("calls per species" in text) is with_calls_health
    assert ("detections (1, newest first)" in text) is not with_calls_health
