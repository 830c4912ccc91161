"""End to end through a real audio server: JACK (dummy backend) -> `pamlive run` -> bus.

A stretch of a DCLDE 2013 right whale recording with annotated upcalls is played by a
JACK client wired to the monitor's PortAudio input port. The test subscribes to the
alert bus and checks that

* the detections are the events `pamlive analyze` finds in the same audio (the audio
  the monitor heard: silence until the player started, the recording, silence after),
  sample-exact, and each was opened by an onset at the window the merge rule opens it;
* every annotated call that analyze detects is alerted live, and the first alert
  (receipt on the bus) comes at most ``LAG_BOUND_MS`` after the end of the window that
  opened it: the live path's share of the delay. The model's and the hop's share (when,
  after a call ends, a window first reaches the threshold) depends on where the hop
  grid falls, i.e. on when the stream began: ``training/judge_narw.py`` measures it over
  every held-out call and ten grid phases, not this one stretch at one phase;
* their UTC times are right within a second, against the wall clock at which the
  player put the recording's first sample on the JACK graph.

It prints, per call, call end -> first alert (``pytest tests/test_live_jack.py -s``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq
from jack_helpers import (
    JackPlayer,
    jack_available,
    jack_connect,
    jack_ports,
    jack_server,
    live_model,
)
from scipy.signal import resample_poly
from test_monitor import Subscriber, run_pamlive, write_config

from pamlive.alerts.schema import parse_utc
from pamlive.detection import Detection, Onset
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import load_model_package
from pamlive.pipeline import classify_windows, make_merger
from pamlive.windows import Windower

pytestmark = [pytest.mark.jack, pytest.mark.slow]

RATE = 48000
PERIOD = 1024
RECORDING = "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_000000.wav"
ANNOTATIONS = "data/narw-dclde2013/train/annotations_train.csv"
# 50 s holding six annotated upcalls (632-674 s), two of them 2 s apart
PLAY_FROM_S, PLAY_TO_S = 628, 678
# The shipped configuration's hop and merge rule (what a crew runs); PAMLIVE_JACK_HOP_S
# measures other hops.
SHIPPED = tomllib.loads((Path(__file__).resolve().parents[1] / "pamlive/configs/narw.toml")
                        .read_text(encoding="utf-8"))["model"]
HOP_S = float(os.environ.get("PAMLIVE_JACK_HOP_S", SHIPPED["hop_s"]))
MAX_MERGE = int(SHIPPED["max_merge"])
LAG_BOUND_MS = 250.0  # a JACK period (21 ms), the callback, the log's fsync, the send
UTC_TOLERANCE_S = 1.0  # the wall clocks of two processes and a non-realtime server
Event = tuple[str, int, int, float]  # class, start sample, end sample, score
SEARCH_PERIODS = 48  # wall clocks place the start within ~1 s (xruns shift a non-RT server)


class TimedSubscriber(Subscriber):
    """A Subscriber that also notes when each message arrived (``time.monotonic()``)."""

    def __init__(self, endpoint: str) -> None:
        self.arrived: list[float] = []
        super().__init__(endpoint)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.sock.poll(50):
                topic, body = self.sock.recv_multipart(zmq.NOBLOCK)
                self.arrived.append(time.monotonic())
                self.messages.append((topic.decode(), json.loads(body)))

    def alerts(self) -> list[tuple[float, dict]]:
        return [(at, b) for at, (t, b) in zip(self.arrived, self.messages, strict=True)
                if t.startswith(("onset.", "detection."))]


@pytest.fixture(scope="module")
def jack_env():
    reason = jack_available()
    if reason and os.environ.get("CI"):
        pytest.fail(f"the live end-to-end test must run in CI: {reason}")
    if reason:
        pytest.skip(reason)
    with jack_server(rate=RATE, period=PERIOD, capture=1) as env:
        yield env


def test_devices_lists_the_jack_device(jack_env) -> None:
    out = run_pamlive("devices", env=jack_env)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if "JACK Audio Connection Kit" in line]
    assert rows and rows[0].split()[-1] == "system" and rows[0].split()[1] == "1"


@pytest.mark.parametrize(("flags", "needle"), [
    (["--device", "system", "--samplerate", "44100"], "refuses 1 channel(s) at 44100 Hz"),
    (["--device", "system", "--channels", "3"], "has 1 input channel(s), 3 requested"),
    (["--device", "no-such-interface"], "no input device matches 'no-such-interface'"),
    (["--device", "99"], "no input device with index 99"),
])
def test_bad_device_settings_are_one_clear_line(jack_env, tmp_path, flags, needle) -> None:
    cfg = write_config(tmp_path, "builtin:narw", 'kind = "device"')  # fails before the model
    out = run_pamlive("run", "-c", str(cfg), "--headless", *flags, env=jack_env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr


def test_live_alerts_through_jack_match_analyze_and_follow_each_call_fast(
        jack_env, shared_dir, tmp_path) -> None:
    audio2, rate2 = sf.read(shared_dir / RECORDING, dtype="float32", always_2d=True)
    excerpt = audio2[PLAY_FROM_S * rate2 : PLAY_TO_S * rate2]
    audio = resample_poly(excerpt, RATE // rate2, 1).astype(np.float32)
    calls = _annotated_calls(shared_dir / ANNOTATIONS)
    assert len(calls) == 6, calls
    model = live_model(tmp_path, audio, RATE)
    cfg = _config(tmp_path, model, f'kind = "device"\ndevice = "system"\nchannels = 1\n'
                                   f"samplerate = {RATE}")
    sub = TimedSubscriber(f"ipc://{tmp_path}/pub")
    # silence after the last call closes its detection
    player, returncode, err = play_to_monitor(jack_env, cfg, audio, sub, tail_s=2 * HOP_S + 1)
    sub.close()
    assert returncode == 0, err
    assert "Traceback" not in err

    alerts = sub.alerts()
    live = [b for _, b in alerts if b["schema"] == "pamlive.detection/1"]
    live_onsets = [b for _, b in alerts if b["schema"] == "pamlive.onset/1"]
    final = sub.of("health")[-1]
    total = final["capture"]["frames"]
    assert final["drops"]["ring_samples"] == 0 and final["drops"]["window_queue"] == 0
    assert live, "no detections arrived on the bus"
    stream_start = parse_utc(live[0]["start_utc"]) - timedelta(
        seconds=live[0]["start_sample"] / RATE)
    clock_offset = (player.start_utc_s - stream_start.timestamp()) * RATE

    # What the monitor heard: silence, the recording from `offset`, silence. The wall
    # clocks give `offset` only roughly (a non-realtime server's xruns skip periods), but
    # the audio itself arrives bit-exact and period-aligned, so the true offset reproduces
    # the live events sample for sample, with the same scores (4 decimals, as Raven
    # tables give them; the onsets' scores, below saturation, pin the offset);
    # `pamlive analyze` must then agree.
    live_events = [_event(d) for d in live]
    live_opened = [_event(o) for o in live_onsets]
    estimate = round(clock_offset / PERIOD)
    candidates = sorted(range(estimate - SEARCH_PERIODS, estimate + SEARCH_PERIODS + 1),
                        key=lambda k: abs(k - estimate))
    package = load_model_package(model)
    classifier = Classifier(package)
    offline = None
    for k in candidates:
        if 0 <= k * PERIOD <= total - audio.shape[0]:
            offline = _offline(package, classifier, _heard(audio, k * PERIOD, total))
            if ([_found(d) for d in offline[1]] == live_events
                    and [_found(o) for o in offline[0]] == live_opened):
                offset = k * PERIOD
                break
    else:
        raise AssertionError(
            f"no offset within {SEARCH_PERIODS} periods of {clock_offset:.0f} samples gives "
            f"the live events {live_events} and onsets {live_opened} "
            f"({final['capture']['overflows']} overflow(s))")
    detections = offline[1]
    assert _analyze_cli(jack_env, tmp_path, f'[model]\npath = "{model}"\nhop_s = {HOP_S}\n'
                        f"max_merge = {MAX_MERGE}\n", _heard(audio, offset, total)) == live_events
    # each detection was opened by one onset (same id), at the window where the merge
    # rule opens it offline (checked with the offset above)
    assert [(o["id"], o["start_sample"]) for o in live_onsets] == [
        (d["id"], d["start_sample"]) for d in live]

    # Right times: live UTC = the player's start + the call's time in the recording.
    played_at = datetime.fromtimestamp(player.start_utc_s, UTC)
    for d in live:
        in_recording = (d["start_sample"] - offset) / RATE
        error = (parse_utc(d["start_utc"]) - (played_at + timedelta(seconds=in_recording)))
        assert abs(error.total_seconds()) <= UTC_TOLERANCE_S, (d, error)

    # Every call analyze detects is alerted live; time from its end to the first alert.
    rows = []
    for begin_s, end_s in calls:
        lo, hi = (offset + round((t - PLAY_FROM_S) * RATE) for t in (begin_s, end_s))
        if not any(d.start_sample < hi and d.end_sample > lo for d in detections):
            continue  # analyze misses it: nothing to alert
        first = [(at, b) for at, b in alerts if b["start_sample"] < hi and b["end_sample"] > lo]
        assert first, f"call at {begin_s:.2f} s detected offline but not alerted live"
        at, body = first[0]
        closed_at = next(t for t, b in first if b["schema"] == "pamlive.detection/1")
        ended = player.played_at(round((end_s - PLAY_FROM_S) * RATE))
        rows.append((begin_s, end_s, body["schema"].split(".")[1].split("/")[0],
                     (at - ended) * 1000, (body["end_sample"] - hi) / RATE * 1000,
                     body["latency_ms"], (closed_at - ended) * 1000))
    assert len(rows) >= 5, rows  # the stretch's calls are clear: nearly all are detected
    # Honest latency: receipt minus an onset's latency_ms is when the monitor held its
    # opening window's last sample: after the player put it on the graph, by about a
    # period (a sound card's buffering, not in latency_ms) plus the log commit and send.
    lags = np.array([(at - b["latency_ms"] / 1000
                      - player.played_at(b["end_sample"] - 1 - offset)) * 1000
                     for at, b in alerts if b["schema"] == "pamlive.onset/1"
                     and 0 <= b["end_sample"] - 1 - offset < audio.shape[0]])
    after_end = np.array([r[3] for r in rows])
    print(f"\nJACK end-to-end, hop {HOP_S} s, {package.name} {package.version}: "
          f"{len(live)} detections, {len(live_onsets)} onsets, offset {offset} samples "
          f"(clock said {clock_offset:.0f}, {final['capture']['overflows']} overflow(s))")
    print("call (s in file)   first alert  call end -> it  its window end - call end  "
          "its latency_ms  call end -> closed detection")
    for begin_s, end_s, kind, ms, window_ms, latency, closed_ms in rows:
        print(f"{begin_s:7.2f}-{end_s:7.2f}  {kind:>11}  {ms:10.0f} ms  {window_ms:22.0f} ms"
              f"  {latency:11.1f} ms  {closed_ms:24.0f} ms")
    print(f"call end -> first alert: median {np.median(after_end):.0f} ms, "
          f"p95 {np.percentile(after_end, 95):.0f} ms, max {after_end.max():.0f} ms; "
          f"health latency_ms {final['latency_ms']}")
    print(f"receipt - latency_ms - (opening window's last sample played): "
          f"{', '.join(f'{v:.0f}' for v in lags)} ms")
    # first alert - the end of its window: the live path's share, call by call
    assert all(ms - window_ms <= LAG_BOUND_MS for _, _, _, ms, window_ms, _, _ in rows), rows
    assert lags.size == len(live_onsets) and lags.min() >= 0 and lags.max() <= LAG_BOUND_MS, lags


def play_to_monitor(env: dict[str, str], cfg: Path, audio: np.ndarray,
                    sub: TimedSubscriber, *, tail_s: float
                    ) -> tuple[JackPlayer, int, str]:
    """``pamlive run -c cfg`` on the JACK device; once it is up, ``audio`` played into it,
    then ``tail_s`` of silence and SIGTERM: (the player, its exit code, its stderr)."""
    monitor = subprocess.Popen([sys.executable, "-m", "pamlive", "run", "-c", str(cfg),
                                "--headless"], env=env, stderr=subprocess.PIPE, text=True)
    player = None
    try:
        sub.wait_for("heartbeat", timeout=60)
        inputs = [p for p in jack_ports(env) if p.startswith("PortAudio") and ":in_" in p]
        assert len(inputs) == 1, inputs
        player = JackPlayer(env, audio)
        jack_connect(env, "pamlive-test-player:out_1", inputs[0])
        player.play()
        assert player.finished.wait(audio.shape[0] / RATE + 30), "the player did not finish"
        time.sleep(tail_s)
        monitor.send_signal(signal.SIGTERM)
        _, err = monitor.communicate(timeout=30)
    finally:
        if player is not None:
            player.close()
        if monitor.poll() is None:
            monitor.kill()
    return player, monitor.returncode, err


def _annotated_calls(path: Path) -> list[tuple[float, float]]:
    """The annotated upcalls inside the played stretch: (begin, end) s in the file."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["filename"] == Path(RECORDING).name]
    return sorted((float(r["start"]), float(r["end"])) for r in rows
                  if float(r["start"]) >= PLAY_FROM_S and float(r["end"]) <= PLAY_TO_S)


def _config(tmp: Path, model: str, source: str) -> Path:
    cfg = write_config(tmp, model, source)
    text = cfg.read_text(encoding="utf-8").replace(
        f'path = "{model}"\n', f'path = "{model}"\nhop_s = {HOP_S}\nmax_merge = {MAX_MERGE}\n')
    cfg.write_text(text, encoding="utf-8")
    return cfg


def _event(body: dict) -> Event:
    return (body["class"], body["start_sample"], body["end_sample"], round(body["score"], 4))


def _found(e: Onset | Detection) -> Event:
    return (e.class_name, e.start_sample, e.end_sample, round(e.score, 4))


def _heard(audio: np.ndarray, offset: int, total: int) -> np.ndarray:
    heard = np.zeros((total, audio.shape[1]), np.float32)
    heard[offset : offset + audio.shape[0]] = audio
    return heard


def _offline(package, classifier, audio: np.ndarray) -> tuple[list[Onset], list[Detection]]:
    """The merge rule's onsets and detections on ``audio`` (as analyze windows it)."""
    windower = Windower(package.chain(), RATE, audio.shape[1], package.segment_s, HOP_S)
    windows = windower.push(audio) + windower.flush()
    merger = make_merger(package, RATE, MAX_MERGE, {})
    events = [e for w, s in zip(windows, classify_windows(classifier, windows), strict=True)
              for e in merger.push_events(w.index, w.start_sample, w.end_sample, s)]
    events += merger.flush(audio.shape[0])
    return ([e for e in events if isinstance(e, Onset)],
            [e for e in events if isinstance(e, Detection)])


def _analyze_cli(env, tmp: Path, model_toml: str, heard: np.ndarray) -> list[Event]:
    """`pamlive analyze` on the audio as heard, with the config's ``[model]`` TOML;
    events as (class, start, end) samples."""
    wav = tmp / "heard.wav"
    sf.write(wav, heard, RATE, subtype="FLOAT")
    cfg = tmp / "analyze.toml"
    cfg.write_text(model_toml, encoding="utf-8")
    out = run_pamlive("analyze", str(wav), "-c", str(cfg), "-o", str(tmp / "tables"),
                      "--no-progress", env=env)
    assert out.returncode == 0, out.stderr
    with open(tmp / "tables" / f"{wav.stem}.selections.txt", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(r["Class"], int(r["Begin Sample"]), int(r["End Sample"]), float(r["Score"]))
            for r in rows]
