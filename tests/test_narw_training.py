"""The right whale training data (training/): the leave-one-day-out split, the synthetic
upcalls and confusers, and the windows drawn from the real recordings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import spectrogram

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
import narw_data
import narw_synth

sys.path.pop(0)

RATE = narw_synth.SAMPLE_RATE


def _ridge(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak frequency of every frame loud enough to hold the sound, and the frame times."""
    f, t, sxx = spectrogram(x, RATE, nperseg=256, noverlap=192)
    loud = sxx.max(axis=0) > 0.05 * sxx.max()
    return f[np.argmax(sxx, axis=0)][loud], t[loud]


def test_synthetic_upcalls_rise_through_the_model_band() -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        x = narw_synth.upcall(rng)
        assert x.shape == (narw_synth.SEGMENT,) and np.isclose(np.abs(x).max(), 1.0)
        peak, t = _ridge(x)
        assert len(peak) >= 4, "an upcall lasts at least a few frames in the window"
        assert 30 <= np.median(peak) <= 350
        assert np.polyfit(t, peak, 1)[0] > 20, "frequency rises (Hz per second)"


def test_synthetic_downsweeps_fall() -> None:
    rng = np.random.default_rng(12)
    for _ in range(10):
        peak, t = _ridge(narw_synth._downsweep(rng))
        assert np.polyfit(t, peak, 1)[0] < -20


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 14.0])
def test_mix_sets_the_in_band_level_asked_for(snr_db: float) -> None:
    """Checked with a brick-wall FFT band (40-360 Hz), not the Butterworth filter the
    code uses: within 1 dB."""
    rng = np.random.default_rng(13)
    noise = rng.normal(0, 0.05, narw_synth.SEGMENT)
    call = narw_synth.upcall(rng)
    added = narw_synth.mix(noise, call, snr_db).astype(np.float64) - noise

    def band(x: np.ndarray) -> float:
        spec = np.fft.rfft(x)
        f = np.fft.rfftfreq(len(x), 1 / RATE)
        spec[(f < 40) | (f > 360)] = 0
        return float(np.sqrt(np.mean(np.fft.irfft(spec, len(x)) ** 2)))

    on = np.abs(call) > 1e-3
    got = 20 * np.log10(band(added) * np.sqrt(len(call) / on.sum()) / band(noise))
    assert abs(got - snr_db) < 1.0


def test_every_confuser_is_a_finite_unit_peak_window() -> None:
    rng = np.random.default_rng(14)
    for make in narw_synth.CONFUSERS:
        x = make(rng)
        assert x.shape == (narw_synth.SEGMENT,) and np.all(np.isfinite(x)) and np.abs(x).max() > 0


def test_three_labelled_days_split_one_held_out(shared_dir: Path) -> None:
    calls = narw_data.annotations(shared_dir)
    per_day = [sum(len(calls.get(Path(f).stem, [])) for f in d.files) for d in narw_data.DAYS]
    assert per_day == [53, 61, 18]
    for k, day in enumerate(narw_data.DAYS):
        train, held = narw_data.split(k)
        assert held is day and day not in train and len(train) == 2
        assert not {f for d in train for f in d.files} & set(day.files)
        assert day.background not in {d.background for d in train}
    assert narw_data.split(None) == (list(narw_data.DAYS), None)


def test_negatives_keep_clear_of_every_call(shared_dir: Path) -> None:
    (rec,) = narw_data.load_days(shared_dir, [narw_data.DAYS[2]], backgrounds=False,
                                  teacher=False)
    starts = rec.noise_starts() / RATE
    for c in rec.calls:
        near = (starts + 2.0 > c.start - narw_data.CALL_GUARD_S) & \
            (starts < c.end + narw_data.CALL_GUARD_S)
        assert not near.any()
    assert len(starts) > 0.3 * len(rec.audio)  # most of the recording is still usable
    rec.teacher_t, rec.teacher_s = np.array([100.0, 300.0]), np.array([0.9, 0.2])
    heard = rec.noise_starts() / RATE
    assert not ((heard + 2.0 > 99.0) & (heard < 101.0)).any()  # around the clip it heard
    assert ((heard + 2.0 > 299.0) & (heard < 301.0)).any() or \
        any(c.start - 4 < 300 < c.end + 4 for c in rec.calls)  # a quiet clip guards nothing


def test_sampler_draws_labelled_windows_from_every_day(shared_dir: Path) -> None:
    days = narw_data.split(0)[0]
    recs = narw_data.load_days(shared_dir, days, teacher=False)
    sampler = narw_data.WindowSampler(recs, np.random.default_rng(15))
    assert sorted(sampler.calls) == [d.name for d in days]
    x, y = sampler.draw(8, 8, 16)
    assert x.shape == (32, narw_synth.SEGMENT) and x.dtype == np.float32
    assert y.tolist() == [1] * 16 + [0] * 16 and np.all(np.isfinite(x))


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_call_confusers_mix_a_confuser_into_that_share_of_call_windows(
        shared_dir: Path, monkeypatch: pytest.MonkeyPatch, share: float) -> None:
    days = narw_data.split(0)[0]
    recs = narw_data.load_days(shared_dir, days, teacher=False)
    t = np.arange(narw_synth.SEGMENT) / RATE
    monkeypatch.setattr(narw_synth, "confuser",
                        lambda rng: np.sin(2 * np.pi * 300.0 * t))  # a marked confuser
    sampler = narw_data.WindowSampler(recs, np.random.default_rng(15), call_confusers=share)
    x, y = sampler.draw(8, 8, 0)
    f, _, sxx = spectrogram(x[y == 1], RATE, nperseg=512)
    power = sxx.mean(axis=-1)
    line = power[:, np.argmin(abs(f - 300.0))] / np.median(power[:, (f > 50) & (f < 350)], axis=1)
    assert (line > 30).all() if share else (line < 30).all()
