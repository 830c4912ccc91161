"""Time difference of arrival for every hydrophone pair by GCC-PHAT.

The cross-spectrum of two channels is whitened (PHAT: only the phase is kept) and
limited to the call band, so a tonal ship line or low-frequency flow noise outside the
band cannot pull the peak. The peak is found on a coarse lag grid within the delays the
geometry allows, then refined on the band-limited correlation itself, evaluated at
fractional lags (an exact interpolation of a band-limited function, unlike a parabola
through three samples of a sharp PHAT peak). Each channel is transformed once per
detection, whatever the number of pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TAPER = 0.5  # Tukey window fraction: leakage falls fast, the middle keeps full weight
_REFINE_STEPS = 21  # evaluations per refinement pass
_REFINE_PASSES = 2  # each pass narrows the search 10x, then a parabola


@dataclass(frozen=True)
class PairDelay:
    """The delay of channel ``j`` after channel ``i`` (seconds; negative: j hears first)."""

    i: int
    j: int
    tdoa_s: float
    confidence: float  # peak of the whitened in-band correlation: 1 = one clean arrival


class _Spectra:
    """Tapered, zero-padded spectra of every channel, kept on the in-band bins only."""

    def __init__(self, samples: np.ndarray, fs: float, band: tuple[float, float] | None
                 ) -> None:
        n = samples.shape[0]
        nfft = 1 << (2 * n - 1).bit_length()  # twice the length: a linear correlation
        from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
        taper = signal.windows.tukey(n, _TAPER)[:, None]
        spec = np.fft.rfft(samples.astype(np.float64) * taper, nfft, axis=0)
        freqs = np.fft.rfftfreq(nfft, 1.0 / fs)
        lo, hi = band if band is not None else (0.0, fs / 2)
        inside = (freqs >= lo) & (freqs <= hi) & (freqs > 0)
        self.freqs = freqs[inside]
        self.bins = np.flatnonzero(inside)
        self.spec = spec[inside]
        top = int(self.bins[-1]) if self.bins.size else 0
        self.coarse_n = 1 << (2 * top + 2).bit_length()  # holds every in-band bin
        self.coarse_step_s = nfft / (fs * self.coarse_n)

    def delay(self, i: int, j: int, max_delay_s: float) -> tuple[float, float]:
        """GCC-PHAT delay of channel ``j`` after ``i`` and its confidence."""
        if self.bins.size == 0:
            return 0.0, 0.0
        cross = np.conj(self.spec[:, i]) * self.spec[:, j]
        mag = np.abs(cross)
        weights = np.where(mag > 0, cross / np.maximum(mag, 1e-300), 0.0)
        # coarse: the whitened band as a short spectrum (an implicitly decimated correlation)
        short = np.zeros(self.coarse_n // 2 + 1, complex)
        short[self.bins] = weights
        corr = np.fft.irfft(short, self.coarse_n)
        step = self.coarse_step_s
        reach = min(int(np.ceil(max_delay_s / step)) + 1, self.coarse_n // 2 - 1)
        lags = np.arange(-reach, reach + 1)
        best = float(lags[int(np.argmax(corr[lags]))] * step)
        half = (_REFINE_STEPS - 1) // 2
        for _ in range(_REFINE_PASSES):  # +-1 old step around the best, 10x finer
            step /= half
            values = _correlation_grid(weights, self.freqs, best - half * step, step,
                                       _REFINE_STEPS)
            k = int(np.clip(np.argmax(values), 1, _REFINE_STEPS - 2))
            best += (k - half) * step
        # a parabola through the last three points: the peak is smooth at this scale
        y0, y1, y2 = values[k - 1], values[k], values[k + 1]
        curve = y0 - 2 * y1 + y2
        offset = 0.5 * (y0 - y2) / curve if curve < 0 else 0.0
        best += float(np.clip(offset, -1.0, 1.0)) * step
        peak = float(_correlation_grid(weights, self.freqs, best, step, 1)[0])
        return float(np.clip(best, -max_delay_s, max_delay_s)), float(np.clip(peak, 0.0, 1.0))


def _correlation_grid(weights: np.ndarray, freqs: np.ndarray, start_s: float, step_s: float,
                      count: int) -> np.ndarray:
    """The band-limited whitened correlation at ``count`` lags from ``start_s`` every
    ``step_s`` (1 = all bins in phase); the phases advance by rotation, not by exp."""
    z = weights * np.exp(2j * np.pi * freqs * start_s)
    rotate = np.exp(2j * np.pi * freqs * step_s)
    out = np.empty(count)
    for m in range(count):
        out[m] = z.real.sum()
        z *= rotate
    return out / max(weights.shape[0], 1)


def gcc_phat(x: np.ndarray, y: np.ndarray, fs: float, max_delay_s: float,
             band: tuple[float, float] | None = None) -> tuple[float, float]:
    """Delay of ``y`` after ``x`` in seconds within ``+-max_delay_s``, and its confidence
    (0..1). ``band``: (low, high) Hz of the call; None uses the whole spectrum."""
    if x.shape != y.shape or x.ndim != 1 or x.shape[0] < 2:
        raise ValueError("gcc_phat needs two 1-D signals of the same length (>= 2 samples)")
    return _Spectra(np.stack([x, y], axis=1), fs, band).delay(0, 1, max_delay_s)


def pair_delays(samples: np.ndarray, fs: float, max_delays_s: dict[tuple[int, int], float],
                band: tuple[float, float] | None = None) -> list[PairDelay]:
    """GCC-PHAT for every pair ``(i, j)`` of ``max_delays_s`` over ``samples`` (frames,
    channels); each pair searched within its own physical delay limit."""
    spectra = _Spectra(samples, fs, band)
    out = []
    for (i, j), limit in max_delays_s.items():
        tdoa, conf = spectra.delay(i, j, limit)
        out.append(PairDelay(i, j, tdoa, conf))
    return out
