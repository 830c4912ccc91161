"""The few ``scipy.signal`` designs the live path needs, in numpy.

Importing ``scipy.signal`` costs ~47 MB of RSS (it pulls in scipy.sparse, linalg,
optimize, interpolate, special, stats ...; scipy.fft or scipy.ndimage ~28 MB more), more
than anything else the monitor loads, for three small functions: the resampler's
anti-alias FIR (``firwin`` with a Kaiser window), the spectrogram windows (``get_window``
"hann" / "hamming") and the clip image's PSD (``spectrogram``). They are written here
with scipy's formulas, in the same order of operations (numpy's FFT is scipy's
pocketfft), and ``tests/test_dsp_windows.py`` checks them against scipy itself.
"""

from __future__ import annotations

import numpy as np


def cosine_window(coefficients: tuple[float, ...], n: int, periodic: bool) -> np.ndarray:
    """``scipy.signal.windows.general_cosine`` (``sym = not periodic``)."""
    if n <= 1:
        return np.ones(n)
    m = n + 1 if periodic else n
    fac = np.linspace(-np.pi, np.pi, m)
    w = np.zeros(m)
    for k, a in enumerate(coefficients):
        w += a * np.cos(k * fac)
    return w[:n]


def hann(n: int, periodic: bool = True) -> np.ndarray:
    """``scipy.signal.get_window("hann", n, fftbins=periodic)``."""
    return cosine_window((0.5, 0.5), n, periodic)


def hamming(n: int, periodic: bool = True) -> np.ndarray:
    """``scipy.signal.get_window("hamming", n, fftbins=periodic)``."""
    return cosine_window((0.54, 1.0 - 0.54), n, periodic)


def tukey(n: int, alpha: float = 0.5, periodic: bool = True) -> np.ndarray:
    """``scipy.signal.get_window(("tukey", alpha), n, fftbins=periodic)``."""
    if n <= 1 or alpha <= 0:
        return np.ones(n)
    if alpha >= 1.0:
        return hann(n, periodic)
    m = n + 1 if periodic else n
    k = np.arange(0, m)
    width = int(np.floor(alpha * (m - 1) / 2.0))
    n1, n2, n3 = k[0:width + 1], k[width + 1:m - width - 1], k[m - width - 1:]
    w1 = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * n1 / alpha / (m - 1))))
    w3 = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * n3 / alpha / (m - 1))))
    return np.concatenate((w1, np.ones(n2.shape), w3))[:n]


def lowpass_kaiser(numtaps: int, cutoff: float, beta: float) -> np.ndarray:
    """``scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))``: a windowed-sinc
    low-pass, ``cutoff`` relative to Nyquist, scaled to unit gain at DC."""
    if not 0 < cutoff < 1:
        raise ValueError(f"cutoff must be in (0, 1), not {cutoff}")
    m = np.arange(0, numtaps) - (numtaps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m)
    h *= np.kaiser(numtaps, beta)
    return h / np.sum(h)


def psd_frames(x: np.ndarray, rate: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.spectrogram(x, fs=rate, nperseg=nperseg, noverlap=nperseg * 3 // 4,
    mode="psd")`` of a 1-D float64 ``x``: ``(freqs, power)``, power (bins, frames)
    one-sided density (Tukey 0.25 window, each frame's mean removed)."""
    step = nperseg - nperseg * 3 // 4
    frames = np.lib.stride_tricks.sliding_window_view(x, nperseg)[::step]
    window = tukey(nperseg, 0.25)
    spec = np.fft.rfft((frames - frames.mean(axis=-1, keepdims=True)) * window, axis=-1)
    power = (np.conjugate(spec) * spec).real * (1.0 / (rate * (window * window).sum()))
    if nperseg % 2:
        power[..., 1:] *= 2
    else:
        power[..., 1:-1] *= 2
    return np.fft.rfftfreq(nperseg, 1.0 / rate), power.T
