"""Synthetic upcalls and synthetic confusers, drawn wide and mixed into real noise.

Why: 132 labelled calls come from one array in one week. A detector that learns only
those learns their recorder, their level and their noise floor, and hears nothing at
another site (v2 scored 0.0002 on PAMGuard's own example). Upcalls drawn over a wide
range of start frequency, sweep, length, curvature, harmonics, level and multipath, mixed
into the real noise of every training recording, teach the call's shape instead; tones,
downsweeps, pulse trains, sweeps starting too high and knocks mixed the same way teach
what it is not (vessel lines, minke pulses, humpback units and song, other sweeps).

All signals are at ``SAMPLE_RATE`` (the model's 2 kHz), ``SEGMENT`` (one 2-s window) long.

>>> rng = np.random.default_rng(0)
>>> upcall(rng).shape
(4000,)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.signal import butter, sosfilt

SAMPLE_RATE = 2000
SEGMENT = 2 * SAMPLE_RATE
# Upcall ranges, from the DCLDE 2013 annotation boxes (lowest 26-101 Hz, highest
# 185-300 Hz, boxes 0.8-2.1 s with margins) drawn a little wider than seen.
START_HZ = (45.0, 130.0)
SWEEP_HZ = (40.0, 180.0)
TOP_HZ = 320.0
DURATION_S = (0.45, 1.5)
BAND_HZ = (40.0, 360.0)  # the model's band (47-357 Hz) where levels are matched
_BAND = butter(4, BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos")


def band_rms(x: np.ndarray) -> float:
    """RMS in the model's band: the level a call is set against."""
    return float(np.sqrt(np.mean(sosfilt(_BAND, x) ** 2))) + 1e-12


def _tone(freq: np.ndarray, rng: np.random.Generator, harmonics: bool) -> np.ndarray:
    """A tone following ``freq`` (Hz per sample) with random phase and, sometimes,
    the 2nd and 3rd harmonics (below Nyquist)."""
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)
    out = np.sin(phase)
    if harmonics:
        for k, p in ((2, 0.5), (3, 0.25)):
            if rng.random() < p and freq.max() * k < 0.45 * SAMPLE_RATE:
                out += rng.uniform(0.1, 0.6) * np.sin(k * phase)
    return out


def _envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    """Tapered on and off (Tukey), with a slow random swell."""
    from scipy.signal.windows import tukey

    env = tukey(n, rng.uniform(0.2, 0.9))
    swell = 1 + rng.uniform(0, 0.4) * np.sin(np.linspace(0, rng.uniform(1, 4) * np.pi, n)
                                            + rng.uniform(0, 2 * np.pi))
    return env * swell


def _multipath(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Surface and bottom echoes: up to two delayed, scaled copies (2-40 ms)."""
    out = x.copy()
    for _ in range(rng.integers(0, 3)):
        d = int(rng.uniform(0.002, 0.04) * SAMPLE_RATE)
        out[d:] += rng.uniform(-0.7, 0.7) * x[: len(x) - d]
    return out


def _place(sound: np.ndarray, rng: np.random.Generator, inside: float = 1.0) -> np.ndarray:
    """A window holding ``sound`` at a random place, at least ``inside`` of it in."""
    n = len(sound)
    lo = -int((1 - inside) * n)
    hi = SEGMENT - n + int((1 - inside) * n)
    at = int(rng.integers(lo, max(hi, lo) + 1))
    out = np.zeros(SEGMENT)
    a, b = max(at, 0), min(at + n, SEGMENT)
    out[a:b] = sound[a - at : b - at]
    return out


def upcall(rng: np.random.Generator) -> np.ndarray:
    """One synthetic upcall, unit peak, placed with at least 70 % of it in the window:
    a rising sweep (concave or convex), sometimes a short dip before it, harmonics,
    tapered envelope, echoes."""
    dur = rng.uniform(*DURATION_S)
    n = int(dur * SAMPLE_RATE)
    f0 = rng.uniform(*START_HZ)
    f1 = min(f0 + rng.uniform(*SWEEP_HZ), TOP_HZ)
    u = np.linspace(0, 1, n)
    freq = f0 + (f1 - f0) * u ** np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    if rng.random() < 0.3:  # the "J": a brief fall before the rise
        k = int(rng.uniform(0.05, 0.2) * n)
        freq[:k] += rng.uniform(5, 20) * (1 - np.linspace(0, 1, k))
    freq += rng.normal(0, 1.5, n).cumsum() / np.sqrt(n)  # slight wander
    call = _multipath(_tone(freq, rng, True) * _envelope(n, rng), rng)
    return _place(call / (np.abs(call).max() + 1e-12), rng, inside=0.7)


def _tonal(rng: np.random.Generator) -> np.ndarray:
    """Vessel lines: one to four steady tones (or a harmonic series), slowly drifting."""
    t = np.arange(SEGMENT) / SAMPLE_RATE
    out = np.zeros(SEGMENT)
    base = rng.uniform(20, 200)
    for k in range(1, rng.integers(2, 6)):
        f = base * k if rng.random() < 0.6 else rng.uniform(40, 400)
        if f > 0.45 * SAMPLE_RATE:
            continue
        drift = f + rng.uniform(-3, 3) * t / t[-1]
        out += rng.uniform(0.2, 1) * _tone(drift, rng, False)
    return out


def _downsweep(rng: np.random.Generator) -> np.ndarray:
    """A falling sweep: an upcall played backwards in frequency."""
    return upcall(rng)[::-1].copy()


def _pulse_train(rng: np.random.Generator) -> np.ndarray:
    """Minke-like pulses (or a knocking engine): short tone bursts at a steady rate."""
    out = np.zeros(SEGMENT)
    length = int(rng.uniform(0.02, 0.15) * SAMPLE_RATE)
    period = int(rng.uniform(0.08, 0.8) * SAMPLE_RATE)
    f = rng.uniform(40, 300)
    burst = _tone(np.full(length, f) + np.linspace(0, rng.uniform(-40, 40), length), rng,
                  True) * np.hanning(length)
    for at in range(int(rng.integers(0, period)), SEGMENT - length, period):
        out[at : at + length] += burst * rng.uniform(0.5, 1)
    return out


def _short_sweep(rng: np.random.Generator) -> np.ndarray:
    """A rising chirp far shorter than an upcall (0.08-0.3 s): clicks, knocks, flow."""
    n = int(rng.uniform(0.08, 0.3) * SAMPLE_RATE)
    f0 = rng.uniform(40, 200)
    freq = np.linspace(f0, f0 + rng.uniform(50, 300), n)
    return _place(_tone(freq, rng, True) * np.hanning(n), rng)


def _high_sweep(rng: np.random.Generator) -> np.ndarray:
    """A rising sweep that starts where no right whale upcall starts (170-260 Hz; upcalls
    begin at 50-130 Hz): humpback song units, other species' upsweeps."""
    n = int(rng.uniform(0.5, 1.8) * SAMPLE_RATE)
    f0 = rng.uniform(170, 260)
    u = np.linspace(0, 1, n)
    freq = f0 + rng.uniform(30, 150) * u ** np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    return _place(_tone(freq, rng, True) * _envelope(n, rng), rng, inside=0.7)


def _song_unit(rng: np.random.Generator) -> np.ndarray:
    """Humpback song units: rising harmonic stacks whose fundamental starts at 140-320 Hz
    and whose second or third harmonic is often the loudest, so that inside the model's
    band a steep bright sweep climbs out of the top while a fainter one runs below it;
    one to three units in a row, as in a phrase."""
    out = np.zeros(SEGMENT)
    at = int(rng.integers(-SAMPLE_RATE // 2, SAMPLE_RATE))
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.uniform(0.4, 1.5) * SAMPLE_RATE)
        f0 = rng.uniform(140, 320)
        u = np.linspace(0, 1, n)
        freq = f0 + rng.uniform(20, 200) * u ** np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        unit = sum(rng.uniform(*amp) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
                   for k, amp in ((1, (0.2, 1.0)), (2, (0.5, 2.0)), (3, (0.0, 1.0)))
                   if freq.max() * k < 0.45 * SAMPLE_RATE)
        unit = unit * _envelope(n, rng)
        a, b = max(at, 0), min(at + n, SEGMENT)
        if b > a:
            out[a:b] += unit[a - at : b - at]
        at += n + int(rng.uniform(0.1, 0.8) * SAMPLE_RATE)
    return out


def _knock(rng: np.random.Generator) -> np.ndarray:
    """Broadband transients: a few decaying noise bursts."""
    out = np.zeros(SEGMENT)
    for _ in range(rng.integers(1, 5)):
        n = int(rng.uniform(0.01, 0.2) * SAMPLE_RATE)
        at = int(rng.integers(0, SEGMENT - n))
        out[at : at + n] += rng.normal(0, 1, n) * np.exp(-np.linspace(0, rng.uniform(2, 8), n))
    return out


CONFUSERS: tuple[Callable[[np.random.Generator], np.ndarray], ...] = (
    _tonal, _downsweep, _pulse_train, _short_sweep, _high_sweep, _song_unit, _knock,
)


def confuser(rng: np.random.Generator) -> np.ndarray:
    """One synthetic sound that is not an upcall, unit peak."""
    x = CONFUSERS[int(rng.integers(len(CONFUSERS)))](rng)
    return x / (np.abs(x).max() + 1e-12)


def mix(noise: np.ndarray, sound: np.ndarray, snr_db: float) -> np.ndarray:
    """``sound`` added to real ``noise`` at ``snr_db`` (RMS in the model's band, the
    sound's RMS taken over where it sounds)."""
    on = np.abs(sound) > 1e-3 * np.abs(sound).max()
    level = band_rms(sound[on]) if on.sum() > 64 else band_rms(sound)
    gain = band_rms(noise) * 10 ** (snr_db / 20) / level
    return (noise + gain * sound).astype(np.float32)
