"""Time difference of arrival for every hydrophone pair by GCC-PHAT.

The cross-spectrum of two channels is whitened (PHAT: only the phase is kept) and
limited to the call band, so a tonal ship line or low-frequency flow noise outside the
band cannot pull the peak. The peak is found on the integer lags the geometry allows
and then refined on the band-limited correlation itself, evaluated at fractional lags
(an exact interpolation of a band-limited function, unlike a parabola through three
samples of a sharp PHAT peak).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

_REFINE_STEPS = 41  # evaluations per refinement pass over +-1 sample (then +-0.05 ...)
_REFINE_PASSES = 3
_TAPER = 0.5  # Tukey window fraction: leakage falls fast, the middle keeps full weight


@dataclass(frozen=True)
class PairDelay:
    """The delay of channel ``j`` after channel ``i`` (seconds; negative: j hears first)."""

    i: int
    j: int
    tdoa_s: float
    confidence: float  # peak of the whitened in-band correlation: 1 = one clean arrival


def _band_cross_spectrum(x: np.ndarray, y: np.ndarray, fs: float,
                         band: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Whitened cross-spectrum of ``y`` against ``x`` on the in-band bins: (weights, bin
    frequencies, fft length). Zero-padded to twice the length: a linear correlation."""
    n = x.shape[0]
    nfft = 1 << (2 * n - 1).bit_length()
    taper = signal.windows.tukey(n, _TAPER)
    cross = np.conj(np.fft.rfft(x * taper, nfft)) * np.fft.rfft(y * taper, nfft)
    freqs = np.fft.rfftfreq(nfft, 1.0 / fs)
    lo, hi = band if band is not None else (0.0, fs / 2)
    inside = (freqs >= lo) & (freqs <= hi) & (freqs > 0)
    mag = np.abs(cross[inside])
    weights = np.where(mag > 0, cross[inside] / np.maximum(mag, 1e-30), 0.0)
    return weights, freqs[inside], nfft


def _correlation_at(weights: np.ndarray, freqs: np.ndarray, lags_s: np.ndarray) -> np.ndarray:
    """The band-limited whitened correlation at arbitrary lags, normalised to 1 at best."""
    phase = np.exp(2j * np.pi * np.outer(lags_s, freqs))
    return (phase @ weights).real / max(weights.shape[0], 1)


def gcc_phat(x: np.ndarray, y: np.ndarray, fs: float, max_delay_s: float,
             band: tuple[float, float] | None = None) -> tuple[float, float]:
    """Delay of ``y`` after ``x`` in seconds within ``+-max_delay_s``, and its confidence
    (0..1). ``band``: (low, high) Hz of the call; None uses the whole spectrum."""
    if x.shape != y.shape or x.ndim != 1 or x.shape[0] < 2:
        raise ValueError("gcc_phat needs two 1-D signals of the same length (>= 2 samples)")
    weights, freqs, nfft = _band_cross_spectrum(x.astype(np.float64), y.astype(np.float64),
                                                fs, band)
    if weights.shape[0] == 0:
        return 0.0, 0.0
    max_lag = min(int(np.ceil(max_delay_s * fs)) + 1, x.shape[0] - 1)
    spectrum = np.zeros(nfft // 2 + 1, complex)
    spectrum[np.rint(freqs * nfft / fs).astype(int)] = weights
    full = np.fft.irfft(spectrum, nfft)
    lags = np.arange(-max_lag, max_lag + 1)
    coarse = full[lags]  # negative lags wrap to the end of the circular correlation
    best = lags[int(np.argmax(coarse))] / fs
    step = 1.0 / fs
    for _ in range(_REFINE_PASSES):
        grid = best + np.linspace(-step, step, _REFINE_STEPS)
        grid = grid[np.abs(grid) <= max_delay_s + 1.0 / fs]
        values = _correlation_at(weights, freqs, grid)
        best = float(grid[int(np.argmax(values))])
        step *= 2.0 / (_REFINE_STEPS - 1)
    peak = float(_correlation_at(weights, freqs, np.array([best]))[0])
    best = float(np.clip(best, -max_delay_s, max_delay_s))
    return best, float(np.clip(peak, 0.0, 1.0))


def pair_delays(samples: np.ndarray, fs: float, max_delays_s: dict[tuple[int, int], float],
                band: tuple[float, float] | None = None) -> list[PairDelay]:
    """GCC-PHAT for every pair ``(i, j)`` of ``max_delays_s`` over ``samples`` (frames,
    channels); each pair searched within its own physical delay limit."""
    out = []
    for (i, j), limit in max_delays_s.items():
        tdoa, conf = gcc_phat(samples[:, i], samples[:, j], fs, limit, band)
        out.append(PairDelay(i, j, tdoa, conf))
    return out
