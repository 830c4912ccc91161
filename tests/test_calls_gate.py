"""The activity gate (pamlive/calls/gate.py): its statistic against plain numpy, the same
calls with it on as off on every reference recording (hops 3 and 2.5, threshold 0.5, the
least it supports) with the margin docs/bats.md gives, quiet audio skipped, clicks let
through, and the config errors in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pamlive.analyze import analyze_files
from pamlive.calls.decode import decode_calls
from pamlive.calls.gate import (
    MIN_DETECTION_THRESHOLD,
    WARMUP_COLUMNS,
    ActivityGate,
    activity,
    open_gate,
)
from pamlive.calls.stream import EventDetector
from pamlive.config import load_config
from pamlive.errors import ConfigError
from pamlive.inference.heatmaps import EventModel
from pamlive.inference.package import load_model_package

REPO = Path(__file__).resolve().parent.parent
LEVEL = 0.95  # docs/bats.md: the level documented for thresholds >= 0.5
MARGIN = 2.0  # the weakest channel-window with a call lies at least this far above it


def _reference_activity(f: np.ndarray) -> float:
    """The statistic by hand: per column of the first WARMUP_COLUMNS its middle value over
    the rows subtracted (clipped at 0), then every 3 x 3 box's sum (zeros outside) / 9."""
    g = f.astype(np.float64).copy()
    rows = g.shape[0]
    for c in range(min(WARMUP_COLUMNS, g.shape[1])):
        s = np.sort(g[:, c])
        mid = s[rows // 2] if rows % 2 else (s[rows // 2 - 1] + s[rows // 2]) / 2
        g[:, c] = np.maximum(g[:, c] - mid, 0)
    p = np.zeros((rows + 2, g.shape[1] + 2))
    p[1:-1, 1:-1] = g
    box = sum(p[i:i + rows, j:j + g.shape[1]] for i in range(3) for j in range(3)) / 9
    return float(box.max())


def test_activity_is_the_largest_3x3_mean_after_pcen_start_up():
    rng = np.random.default_rng(3)
    f = rng.exponential(0.1, (3, 40, 300)).astype(np.float32)
    f[:, :, :20] += 3.0  # PCEN's start-up: every row bright -> removed by the median
    f[1, 10:13, 150:153] += 2.0  # a compact blob: the whole box
    f[2, 5, 200] += 6.0  # one bright pixel: a ninth of it
    f[2, 30:33, 5:8] += 2.5  # a blob inside the start-up columns is kept
    got = activity(f)
    want = [_reference_activity(x) for x in f]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got[1] > 2.0 > got[0] and got[2] > 2.5  # the blobs, not the start-up, lead


def test_gate_selects_channels_and_counts():
    f = np.zeros((3, 20, 200), np.float32)
    f[1, 5:8, 50:53] = 3.0
    gate = ActivityGate(1.0)
    assert gate.select(f).tolist() == [1]
    assert gate.counts() == {"run": 1, "skipped": 2}
    off = ActivityGate()
    assert off.select(f).tolist() == [0, 1, 2] and off.counts() == {"run": 3, "skipped": 0}
    assert gate.share() == "network: 33 % of 3 channel-windows (activity gate 1)"


def test_gate_config_errors_are_one_line():
    assert load_config(None, {"model.activity_gate": 0.95}).model.activity_gate == 0.95
    for value, words in ((True, "must be false or a number"), (5, "must be in 0..4"),
                         (float("nan"), "finite"), ("high", "must be false or a number")):
        with pytest.raises(ConfigError, match=words) as err:
            load_config(None, {"model.activity_gate": value})
        assert "\n" not in str(err.value) and "[model] activity_gate" in str(err.value)
    with pytest.raises(ConfigError, match=r"thresholds >= 0\.5 only.*got 0\.3") as err:
        open_gate(0.95, 0.3)
    assert "\n" not in str(err.value)
    assert open_gate(False, 0.01).level is None and open_gate(0, 0.01).level is None
    assert open_gate(0.95, MIN_DETECTION_THRESHOLD).level == 0.95


def test_a_score_model_refuses_the_gate_in_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\npath = "builtin:narw"\nactivity_gate = 0.95\n')
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(4000, np.float32), 2000)
    run = subprocess.run([sys.executable, "-m", "pamlive", "analyze", str(wav), "-c", str(cfg),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=REPO, check=False)
    assert run.returncode == 2
    [line] = run.stderr.strip().splitlines()
    assert "activity_gate: for event models (bats) only" in line


@pytest.fixture(scope="module")
def bats(bats_package_dir):
    package = load_model_package(bats_package_dir)
    return package, EventModel(package)


def _recordings(shared_dir: Path) -> list[Path]:
    paths = (sorted((shared_dir / "data" / "bats").glob("*.wav"))
             + sorted((shared_dir / "data" / "bats-batdetect2" / "audio").glob("*.wav")))
    if len(paths) < 6:
        pytest.skip("the six bat recordings of ../shared are not here")
    return paths


class CountingModel(EventModel):
    """The network, counting the channel-windows it is given (how many the gate let by)."""

    def __init__(self, model: EventModel, threshold: float) -> None:
        self.__dict__.update(model.__dict__)
        self.channels = 0
        self.threshold = threshold
        self.weakest = np.inf  # the least activity of a channel-window holding a call

    def run(self, features: np.ndarray) -> list[dict[str, np.ndarray]]:
        out = super().run(features)
        assert self.package.events is not None
        self.channels += features.shape[0]
        for f, o in zip(activity(features), out, strict=True):
            if decode_calls(o, self.package.events, 0.0, 0, self.package.class_names,
                            threshold=self.threshold):
                self.weakest = min(self.weakest, float(f))
        return out


def _keys(calls):
    return [(c.channel, c.start_s, c.end_s, c.low_hz, c.high_hz, c.species) for c in calls]


@pytest.mark.parametrize("hop", [3.0, 2.5])
@pytest.mark.slow
def test_gate_on_finds_the_same_calls_as_off_on_every_reference_recording(
        bats, shared_dir, hop):
    """The safety rule: at the least threshold the level supports (0.5; a higher one finds
    a subset of its calls in a subset of its channel-windows), the same calls, and every
    channel-window holding one lies >= MARGIN x above the level."""
    _, model = bats
    wavs = _recordings(shared_dir)
    off = CountingModel(model, MIN_DETECTION_THRESHOLD)
    on = CountingModel(model, MIN_DETECTION_THRESHOLD)
    results = {}
    for name, counting, level in (("off", off, False), ("on", on, LEVEL)):
        detectors = []
        for wav in wavs:
            data, rate = sf.read(wav, dtype="float32", always_2d=True)
            gate = open_gate(level, MIN_DETECTION_THRESHOLD)
            det = EventDetector(counting, rate, data.shape[1], hop_s=hop,
                                threshold=MIN_DETECTION_THRESHOLD, gate=gate)
            detectors.append((det.push(data) + det.finish(), gate))
        results[name] = detectors
    for (calls_off, _), (calls_on, _) in zip(results["off"], results["on"], strict=True):
        assert _keys(calls_on) == _keys(calls_off)
        np.testing.assert_allclose([c.det_prob for c in calls_on],
                                   [c.det_prob for c in calls_off], rtol=0, atol=1e-6)
    assert sum(len(c) for c, _ in results["off"]) > 80  # real calls, not an empty run
    assert off.weakest / LEVEL >= MARGIN, off.weakest
    skipped = sum(g.skipped for _, g in results["on"])
    run = sum(g.run for _, g in results["on"])
    assert on.channels == run and off.channels == run + skipped


def _noise(rate: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    white = rng.normal(0, 0.01, int(rate * seconds))
    spectrum = np.fft.rfft(rng.normal(0, 1, white.size))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    pink = np.fft.irfft(spectrum, white.size)
    return np.stack([white, pink / pink.std() * 0.001], axis=1).astype(np.float32)


def test_quiet_audio_skips_the_network_and_clicks_open_it(bats):
    """White and pink noise (2 channels, 8 s at 256 kHz) skip the network; the same noise
    with a click (0.5 ms of broadband noise: rain, handling) every 0.3 s opens the gate on
    its channel."""
    _, model = bats
    rate = 256000
    quiet = _noise(rate, 8.0, 1)
    clicky = quiet.copy()
    burst = np.random.default_rng(2).normal(0, 0.2, rate // 2000).astype(np.float32)
    for start in range(int(0.05 * rate), len(clicky) - burst.size, int(0.3 * rate)):
        clicky[start:start + burst.size, 0] += burst
    counts = {}
    for name, audio in (("quiet", quiet), ("clicks", clicky)):
        counting = CountingModel(model, MIN_DETECTION_THRESHOLD)
        gate = open_gate(LEVEL, MIN_DETECTION_THRESHOLD)
        det = EventDetector(counting, rate, 2, hop_s=3.0, threshold=MIN_DETECTION_THRESHOLD,
                            gate=gate)
        assert det.push(audio) + det.finish() == []
        counts[name] = (gate.run, gate.skipped, counting.channels)
    run, skipped, channels = counts["quiet"]
    assert skipped >= 5 and run <= 1 and channels == run  # 3 windows x 2 channels
    run, skipped, channels = counts["clicks"]
    assert run >= 3 and channels == run  # every window of the click channel


def test_analyze_reports_the_network_share(bats, shared_dir, tmp_path):
    package, _ = bats
    wav = _recordings(shared_dir)[0]
    result = analyze_files([wav], package, tmp_path, hop_s=3.0, detection_threshold=0.5,
                           activity_gate=LEVEL, progress=False)
    assert result.gate is not None and result.gate.run + result.gate.skipped == 3
    assert result.gate.share().startswith("network: ")
    with pytest.raises(ConfigError, match="activity_gate"):
        analyze_files([wav], package, tmp_path, hop_s=3.0, detection_threshold=0.3,
                      activity_gate=LEVEL, progress=False)


def test_the_live_monitor_refuses_the_gate_in_one_line_where_it_is_unsafe(bats_package_dir):
    """Before capture starts: with a score model, and below the least supported threshold
    (the package's own default, 0.01, included)."""
    from pamlive.kinds import Uses, kind_of

    bats = load_model_package(bats_package_dir)
    for package, overrides in (
            (load_model_package("builtin:narw"), {}),
            (bats, {"model.detection_threshold": 0.3}),
            (bats, {})):
        cfg = load_config(None, {"model.activity_gate": LEVEL, **overrides})
        with pytest.raises(ConfigError, match="activity_gate") as err:
            kind_of(package, cfg.model).refuse(Uses())
        assert "\n" not in str(err.value)
    cfg = load_config(None, {"model.activity_gate": LEVEL, "model.detection_threshold": 0.5})
    kind = kind_of(bats, cfg.model)
    kind.refuse(Uses())
    assert kind.gate().level == LEVEL
