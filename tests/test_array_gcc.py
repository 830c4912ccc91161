"""GCC-PHAT and the bearing solver against independent references.

Delays are applied by scipy's resampling-free tools (an FFT phase shift and a windowed
sinc fractional-delay FIR from ``scipy.signal.firwin``), the geometries are worked out
by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from pamlive.array.gcc_phat import PairDelay, gcc_phat
from pamlive.array.geometry import ArrayGeometry

FS = 8000
BAND = (80.0, 230.0)


def _call_band_noise(n: int, seed: int) -> np.ndarray:
    sos = signal.butter(4, BAND, "bandpass", fs=FS, output="sos")
    return signal.sosfilt(sos, np.random.default_rng(seed).standard_normal(n))


def _phase_shift(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """``x`` delayed by a fractional number of samples (linear, zero-padded FFT shift)."""
    n = x.shape[0]
    spec = np.fft.rfft(x, 4 * n)
    f = np.fft.rfftfreq(4 * n)
    return np.fft.irfft(spec * np.exp(-2j * np.pi * f * delay_samples), 4 * n)[:n]


def _sinc_delay(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """``x`` delayed by a windowed-sinc fractional-delay FIR (integer part by shifting)."""
    taps, centre = 129, 64
    h = np.sinc(np.arange(taps) - centre - (delay_samples % 1.0)) * signal.windows.kaiser(taps, 8)
    y = signal.lfilter(h / h.sum(), 1.0, np.concatenate([x, np.zeros(centre)]))[centre:]
    whole = math.floor(delay_samples)
    return np.concatenate([np.zeros(whole), y])[: x.shape[0]]


@pytest.mark.parametrize("delay", [0.0, 7.0, -12.0, 3.25, -5.6, 23.71])
@pytest.mark.parametrize("shift", [_phase_shift, _sinc_delay])
def test_gcc_phat_finds_integer_and_fractional_delays_in_noise(delay, shift) -> None:
    rng = np.random.default_rng(abs(int(delay * 100)))
    x = _call_band_noise(16000, 1)
    y = shift(x, delay) if delay >= 0 else x
    if delay < 0:  # y leads: delay x instead
        x = shift(y, -delay)
    noise = 0.2 * x.std()  # independent white noise: ~0.05 sample delay error (1 sigma)
    x = x + noise * rng.standard_normal(x.shape[0])
    y = y + noise * rng.standard_normal(y.shape[0])
    tdoa, confidence = gcc_phat(x, y, FS, 0.01, BAND)
    assert tdoa * FS == pytest.approx(delay, abs=0.2)
    assert 0.3 < confidence <= 1.0


def test_gcc_phat_respects_the_band_and_the_physical_limit() -> None:
    x = _call_band_noise(16000, 2)
    y = _phase_shift(x, 10.0)
    # a strong 60 Hz line common to both channels with no delay would pull an unbanded peak
    hum = 20 * x.std() * np.sin(2 * np.pi * 60 * np.arange(16000) / FS)
    tdoa, _ = gcc_phat(x + hum, y + hum, FS, 0.01, BAND)
    assert tdoa * FS == pytest.approx(10.0, abs=0.05)
    limited, _ = gcc_phat(x, y, FS, 5 / FS, BAND)  # the true delay is out of reach
    assert abs(limited) <= 5 / FS + 1e-12


def test_gcc_phat_on_uncorrelated_noise_has_low_confidence() -> None:
    _, confidence = gcc_phat(_call_band_noise(16000, 3), _call_band_noise(16000, 4), FS, 0.01,
                             BAND)
    assert confidence < 0.2


def _delays(geometry: ArrayGeometry, bearing_deg: float) -> list[PairDelay]:
    b = math.radians(bearing_deg)
    d = geometry.delays_for(np.array([math.sin(b), math.cos(b), 0.0]))
    return [PairDelay(i, j, t, 1.0) for (i, j), t in d.items()]


def test_square_array_bearing_by_hand() -> None:
    # 40 m square, c = 1500. A source due east (090): elements at x = 40 hear it
    # 40 / 1500 s = 26.67 ms before those at x = 0; north-south pairs hear it together.
    g = ArrayGeometry([[0, 0], [40, 0], [0, 40], [40, 40]], 1500.0)
    pairs = {(0, 1): -40 / 1500, (0, 2): 0.0, (0, 3): -40 / 1500, (1, 2): 40 / 1500,
             (1, 3): 0.0, (2, 3): -40 / 1500}
    b = g.solve([PairDelay(i, j, t, 1.0) for (i, j), t in pairs.items()], FS)
    assert b is not None and not b.ambiguous
    assert b.bearing_deg == pytest.approx(90.0, abs=1e-6)
    assert b.residual_s == pytest.approx(0.0, abs=1e-9)
    # south-west (225): the (0,0) element is nearest; (0,1) delay = 40 sin45 / 1500
    d = 40 * math.sin(math.radians(45)) / 1500
    pairs = {(0, 1): d, (0, 2): d, (0, 3): 2 * d, (1, 2): 0.0, (1, 3): d, (2, 3): d}
    b = g.solve([PairDelay(i, j, t, 1.0) for (i, j), t in pairs.items()], FS)
    assert b is not None and b.bearing_deg == pytest.approx(225.0, abs=1e-6)


@pytest.mark.parametrize("bearing", [0.0, 37.0, 133.0, 200.0, 301.5])
def test_square_array_round_trip_and_true_bearing(bearing) -> None:
    g = ArrayGeometry([[0, 0], [40, 0], [0, 40], [40, 40]], 1500.0)
    b = g.solve(_delays(g, bearing), FS)
    assert b is not None and b.bearing_deg == pytest.approx(bearing, abs=1e-6)
    assert b.turned(100.0).bearing_deg == pytest.approx((bearing + 100.0) % 360.0, abs=1e-6)


def test_towed_line_reports_cone_and_both_candidates_by_hand() -> None:
    # two elements 100 m apart along the vessel's axis (+y forward); a source at 060:
    # the forward element hears it 100 cos 60 / 1500 = 33.3 ms first
    g = ArrayGeometry([[0, 0], [0, -100]], 1500.0)
    b = g.solve([PairDelay(0, 1, 100 * math.cos(math.radians(60)) / 1500, 1.0)], FS)
    assert b is not None and b.ambiguous
    assert b.cone_deg == pytest.approx(60.0, abs=1e-6)
    assert sorted(b.candidates_deg) == pytest.approx([60.0, 300.0], abs=1e-6)
    true = b.turned(90.0)  # ship heading east: the candidates are 150 and 030
    assert sorted(true.candidates_deg) == pytest.approx([30.0, 150.0], abs=1e-6)
    assert true.cone_deg == pytest.approx(60.0)


def test_three_d_array_resolves_elevation() -> None:
    g = ArrayGeometry([[0, 0, 0], [30, 0, 0], [0, 30, 0], [0, 0, 20]], 1500.0)
    el, az = math.radians(-20.0), math.radians(150.0)
    u = np.array([math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])
    b = g.solve([PairDelay(i, j, t, 1.0) for (i, j), t in g.delays_for(u).items()], FS)
    assert b is not None
    assert b.bearing_deg == pytest.approx(150.0, abs=1e-6)
    assert b.elevation_deg == pytest.approx(-20.0, abs=1e-6)


def test_noisy_delays_give_an_honest_uncertainty() -> None:
    g = ArrayGeometry([[0, 0], [40, 0], [0, 40], [40, 40]], 1500.0)
    rng = np.random.default_rng(5)
    errors, sigmas = [], []
    for _ in range(300):
        noisy = [PairDelay(d.i, d.j, d.tdoa_s + rng.normal(0, 0.5 / FS), 1.0)
                 for d in _delays(g, 70.0)]
        b = g.solve(noisy, FS)
        assert b is not None
        errors.append(b.bearing_deg - 70.0)
        sigmas.append(b.uncertainty_deg)
    # the reported one-sigma matches the spread of the estimates within a factor of 1.5
    assert np.std(errors) / 1.5 < np.median(sigmas) < np.std(errors) * 1.5
