"""pamlive.dsp.windows: numpy versions of the scipy.signal designs the live path needs,
checked against scipy.signal itself (the independent reference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from pamlive.dsp.resample import design_antialias_taps
from pamlive.dsp.windows import hamming, hann, lowpass_kaiser, psd_frames, tukey


@pytest.mark.parametrize("n", [1, 2, 7, 256, 1000, 4096])
@pytest.mark.parametrize("periodic", [True, False])
def test_cosine_windows_are_scipys(n, periodic):
    np.testing.assert_allclose(hann(n, periodic), signal.get_window("hann", n, periodic),
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(hamming(n, periodic),
                               signal.get_window("hamming", n, periodic), rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 9, 1024, 16384])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("periodic", [True, False])
def test_tukey_is_scipys(n, alpha, periodic):
    np.testing.assert_allclose(tukey(n, alpha, periodic),
                               signal.get_window(("tukey", alpha), n, periodic),
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize(("numtaps", "cutoff", "beta"),
                         [(961, 1 / 48, 5.0), (61, 1 / 3, 5.0), (401, 0.1, 8.6), (20, 0.5, 5.0)])
def test_kaiser_lowpass_is_scipys_firwin(numtaps, cutoff, beta):
    np.testing.assert_allclose(lowpass_kaiser(numtaps, cutoff, beta),
                               signal.firwin(numtaps, cutoff, window=("kaiser", beta)),
                               rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize(("up", "down"), [(1, 48), (1, 24), (2, 3), (5, 96)])
def test_the_resamplers_filter_is_resample_polys(up, down):
    """resample_poly's default design: firwin(2 * 10 * max + 1, 1 / max, kaiser 5)."""
    m = max(up, down)
    np.testing.assert_allclose(design_antialias_taps(up, down),
                               signal.firwin(2 * 10 * m + 1, 1.0 / m, window=("kaiser", 5.0)),
                               rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("nperseg", [256, 255, 4096])
def test_psd_frames_are_scipys_spectrogram(nperseg):
    x = np.random.default_rng(1).standard_normal(20_000) + 0.3
    freqs, _, want = signal.spectrogram(x, fs=96_000.0, nperseg=nperseg,
                                        noverlap=nperseg * 3 // 4, mode="psd")
    got_freqs, got = psd_frames(x, 96_000.0, nperseg)
    np.testing.assert_array_equal(got_freqs, freqs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_a_cutoff_outside_the_band_is_refused():
    with pytest.raises(ValueError, match="cutoff"):
        lowpass_kaiser(11, 1.0, 5.0)
