"""Bats live (issue 16.3): a real bat recording played through the live monitor (playback
source, ring, windowing and inference threads, the bus) publishes, on a real ZeroMQ
subscriber, exactly the calls ``pamlive analyze`` finds in the same audio, logs each
before sending it, and summarises them per UTC minute."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal
from test_monitor import Subscriber, write_config

from pamlive.alerts.log import read_all
from pamlive.alerts.schema import call_topic, validate_call, validate_call_summary
from pamlive.analyze import analyze_files
from pamlive.app import run_monitor
from pamlive.config import data_path, load_config
from pamlive.inference.package import load_model_package
from pamlive.live.calls import MinuteCounts
from pamlive.sources.files import start_time_from_name

pytestmark = pytest.mark.slow  # live runs of batdetect2's network over real recordings
REPO = Path(__file__).resolve().parent.parent
HOP_S = 2.0  # windows of 3 s overlap by 1 s: calls found twice are de-duplicated live too




@pytest.fixture
def recordings(shared_dir) -> list[Path]:
    paths = sorted((shared_dir / "data" / "bats").glob("*.wav"))
    if len(paths) < 2:
        pytest.skip("the bat recordings (../shared/data/bats) are not here")
    return paths


def _offline(package: Path, wav: Path, tmp: Path) -> list[tuple]:
    """``pamlive analyze``'s calls as (start, end sample, channel, species, probs, box)."""
    result = analyze_files([wav], load_model_package(package), tmp / "analyze", hop_s=HOP_S,
                           progress=False)
    rate = sf.info(wav).samplerate
    return [(round(c.start_s * rate), max(round(c.start_s * rate), round(c.end_s * rate)),
             c.channel, c.species, c.class_prob, c.det_prob, c.low_hz, c.high_hz)
            for c in result.files[0].calls]


def _live(bodies: list[dict]) -> list[tuple]:
    return [(b["start_sample"], b["end_sample"], b["channel"], b["species"], b["class_prob"],
             b["det_prob"], b["low_hz"], b["high_hz"]) for b in bodies]


def _assert_same_calls(live: list[tuple], offline: list[tuple]) -> None:
    """The same calls: times, channel, species and box exactly; probabilities to 1e-6
    (ONNX Runtime's last bit depends on how many windows share a batch, which the live
    monitor decides by what is queued)."""
    assert [c[:4] + c[6:] for c in live] == [c[:4] + c[6:] for c in offline]
    np.testing.assert_allclose([c[4:6] for c in live], [c[4:6] for c in offline],
                               rtol=0, atol=1e-6)


def _check_published(messages: list[tuple[str, dict]], wav: Path, log: Path) -> list[dict]:
    """Every call valid, on its species' topic, logged as sent, its UTC from the sample
    clock; the minute summaries count them all. Returns the call bodies."""
    calls = [b for t, b in messages if t.startswith("call.")]
    for topic, body in messages:
        if topic.startswith("call."):
            validate_call(body)
            assert topic == call_topic(body["species"])
    start = start_time_from_name(wav)
    assert start is not None
    rate = calls[0]["sample_rate"]
    for b in calls:
        utc = start + timedelta(seconds=b["start_sample"] / rate)
        assert b["start_utc"] == utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    summaries = [b for t, b in messages if t == "summary.calls"]
    for s in summaries:
        validate_call_summary(s)
    counted: dict[str, int] = {}
    for s in summaries:
        for species, n in s["counts"].items():
            counted[species] = counted.get(species, 0) + n
    heard: dict[str, int] = {}
    for b in calls:
        heard[b["species"]] = heard.get(b["species"], 0) + 1
    assert counted == heard
    assert read_all(log, kinds=("call",)) == calls
    assert read_all(log, kinds=("call_summary",)) == summaries
    health = [b for t, b in messages if t == "health"][-1]
    assert health["final"] is True and health["calls"]["published"] == len(calls)
    # the gate is off (configs' default): the network ran on every channel-window
    assert health["calls"]["activity_gate"] is None
    assert health["calls"]["precision"] == "float32"
    assert health["calls"]["channel_windows"]["run"] > 0
    assert health["calls"]["channel_windows"]["skipped"] == 0
    assert not any(health["drops"].values()), health["drops"]
    return calls


def test_minute_counts_close_each_utc_minute_once_the_stream_has_passed_it():
    start = datetime(2020, 8, 17, 1, 13, 32, 500000, tzinfo=UTC)
    counts = MinuteCounts(start)
    counts.add(start + timedelta(seconds=1), "Nyctalus noctula", 0.4)
    counts.add(start + timedelta(seconds=20), "Nyctalus noctula", 0.7)
    counts.add(start + timedelta(seconds=29), "Pipistrellus pygmaeus", 0.5)  # 01:14:01.5
    assert counts.close_before(datetime(2020, 8, 17, 1, 13, 59, tzinfo=UTC)) == []
    [(s, e, n, p, partial)] = counts.close_before(datetime(2020, 8, 17, 1, 14, 2,
                                                           tzinfo=UTC))
    assert (s, e, partial) == (start, datetime(2020, 8, 17, 1, 14, tzinfo=UTC), True)
    assert n == {"Nyctalus noctula": 2} and p == {"Nyctalus noctula": 0.7}
    # two quiet minutes, then the end of the stream half way into the next
    end = datetime(2020, 8, 17, 1, 16, 30, tzinfo=UTC)
    closed = counts.flush(end)
    assert [(c[0].minute, c[1].minute, c[1].second, c[2], c[4]) for c in closed] == [
        (14, 15, 0, {"Pipistrellus pygmaeus": 1}, False),
        (15, 16, 0, {}, False),
        (16, 16, 30, {}, True)]


def test_live_calls_equal_analyze_calls_for_a_bat_recording(bats_package_dir, recordings,
                                                            tmp_path):
    wav = recordings[0]
    cfg = load_config(write_config(
        tmp_path, str(bats_package_dir),
        f'kind = "replay"\nfiles = ["{wav}"]\nspeed = 8.0\nblocksize = 4096',
        'log = "calls.sqlite"\n'), {"model.hop_s": HOP_S})
    sub = Subscriber(cfg.alerts.publish)
    assert run_monitor(cfg, headless=True, duration_s=120.0) == 0
    messages = sub.close()
    assert cfg.alerts.log is not None
    calls = _check_published(messages, wav, data_path(cfg, cfg.alerts.log))
    offline = _offline(bats_package_dir, wav, tmp_path)
    assert len(offline) > 50  # a real night: many calls
    _assert_same_calls(_live(calls), offline)


def test_pamlive_run_plays_four_channels_at_384_khz_and_publishes_analyze_s_calls(
        bats_package_dir, recordings, tmp_path):
    """``pamlive run --play FILE`` (a process of its own) on 4 channels at 384 kHz,
    resampled from the 250 kHz recordings: the monitor resamples to the model's rate as
    analyze does, and each channel's calls are analyze's."""
    up, down = 384, 250
    seconds = 4.0  # of each recording: enough windows to overlap, and quick
    chans = []
    for k in range(4):
        audio, _ = sf.read(recordings[k % len(recordings)], dtype="float32",
                           frames=int(seconds * 250000))
        chans.append(signal.resample_poly(audio, up, down).astype(np.float32))
    wav = tmp_path / "20200817_011332.wav"  # the stream start from its name
    sf.write(wav, np.stack(chans, axis=1), 384000, subtype="FLOAT")
    cfg_path = write_config(tmp_path, str(bats_package_dir), 'kind = "device"\nspeed = 8.0',
                            'log = "calls.sqlite"\n')
    cfg_path.write_text(cfg_path.read_text().replace("[model]\n", f"[model]\nhop_s = {HOP_S}\n"))
    cfg = load_config(cfg_path)
    sub = Subscriber(cfg.alerts.publish)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pamlive", "run", "-c", str(cfg_path),
                           "--play", str(wav), "--headless"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "call(s), lost 0 ring samples" in done.stderr
    messages = sub.close()
    assert cfg.alerts.log is not None
    calls = _check_published(messages, wav, data_path(cfg, cfg.alerts.log))
    assert {b["channel"] for b in calls} == {0, 1, 2, 3}
    assert calls[0]["sample_rate"] == 384000
    _assert_same_calls(_live(calls), _offline(bats_package_dir, wav, tmp_path))


def test_a_backlog_of_windows_goes_through_the_network_one_window_at_a_time(
        bats_package_dir, recordings):
    """A monitor that fell behind finds many windows queued; one batch of them all would
    hold about 110 MB of activations per channel-window (GBs at 4 channels x 32 windows),
    so each window (all its channels) is its own batch, with the calls of a batch of all."""
    from pamlive.calls.dedup import CallDeduplicator
    from pamlive.calls.stream import window_calls
    from pamlive.inference.heatmaps import EventModel
    from pamlive.live.calls import CallFinder
    from pamlive.windows import Window, make_event_windower

    package = load_model_package(str(bats_package_dir))
    audio = np.stack([sf.read(p, dtype="float32", frames=1_500_000)[0]
                      for p in recordings[:2]], axis=1)
    windower = make_event_windower(package, 250000, 2, HOP_S)
    windows: list[Window] = windower.push(audio) + windower.flush()
    assert len(windows) >= 3
    model = EventModel(package)
    batches: list[int] = []
    run = model.run

    def counted(features: np.ndarray) -> list[dict[str, np.ndarray]]:
        batches.append(features.shape[0])
        return run(features)

    model.run = counted  # type: ignore[method-assign]
    finder = CallFinder(model, 250000, windower.hop_s)
    found = finder.find(windows)
    assert batches == [2] * len(windows)  # each window's two channels, never more
    calls = [c for f in found for c in f.calls] + finder.flush()
    assert [f.end_sample for f in found] == [w.end_sample for w in windows]
    dedup = CallDeduplicator(windower.hop_s)
    expected: list = []
    for w, c in zip(windows, window_calls(EventModel(package), windows, 250000), strict=True):
        expected += dedup.push(c, w.start_sample / 250000, w.end_sample / 250000)
    expected += dedup.flush()
    assert [(c.start_s, c.channel, c.species, c.low_hz) for c in calls] == [
        (c.start_s, c.channel, c.species, c.low_hz) for c in expected]
    assert {c.channel for c in calls} == {0, 1}


def test_run_play_with_a_missing_recording_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "pamlive", "run", "-c", "builtin:bats",
                           "--play", str(tmp_path / "missing.wav"), "--headless"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"pamlive: error: {tmp_path / 'missing.wav'}: no such file or folder"]
