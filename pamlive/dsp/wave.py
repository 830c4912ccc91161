"""PAMGuard's waveform transforms (segment in, segment out, float64)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pamlive.dsp import kernels
from pamlive.dsp.features import Features, flag, number, positive_int, require_wave
from pamlive.errors import TransformError

# PCM full scale of the 16-bit integer view that PAMGuard's PGNORM/KETOSNORM work on
_INT16_FULL_SCALE = 32768.0


def pre_emph(f: Features, pre_empf_factor: float) -> Features:
    """``y[n] = x[n] - a x[n-1]`` (``x[-1] = 0``): PAMGuard's pre-emphasis filter."""
    require_wave(f, "pre_emph")
    a = number("pre_emph", "pre_empf_factor", pre_empf_factor)
    x = np.asarray(f.data, dtype=np.float64)
    y = np.empty_like(x)
    y[:, :1] = x[:, :1]
    np.multiply(x[:, :-1], -a, out=y[:, 1:])
    y[:, 1:] += x[:, 1:]
    return replace(f, data=y)


def trim(f: Features, min: int, max: int) -> Features:
    """Keep samples ``min`` to ``max`` (exclusive; ``max`` clipped to the segment)."""
    require_wave(f, "trim")
    lo, hi = int(min), int(max)
    if lo < 0 or hi <= lo:
        raise TransformError(f"trim: need 0 <= min < max, got min={min}, max={max}")
    if lo >= f.data.shape[1]:
        raise TransformError(f"trim: min={lo} is past the segment ({f.data.shape[1]} samples)")
    return replace(f, data=f.data[:, lo:hi])


_FILTER_TYPES = {0: "lowpass", 1: "highpass", 2: "bandpass"}
_CHEBYSHEV_STOP_DB = 10.0  # iirj ChebyshevII as PAMGuard calls it: 10 dB stop band


def filter_sos(
    sample_rate: float,
    filtertype: int,
    filtermethod: int,
    order: int,
    lowcut: float,
    highcut: float,
    zero_phase: bool = False,
) -> np.ndarray:
    """Second-order sections of PAMGuard's ``filter_wav`` (causal IIR) at ``sample_rate``
    (the same sections whether they run causally or ``zero_phase``)."""
    name = "filter_wav"
    kind = _FILTER_TYPES.get(filtertype)
    if kind is None:
        raise TransformError(
            f"{name}: filtertype must be 0 (low), 1 (high) or 2 (band), got {filtertype!r}"
        )
    if filtermethod not in (0, 1):
        raise TransformError(
            f"{name}: filtermethod must be 0 (Butterworth) or 1 (Chebyshev), got {filtermethod!r}"
        )
    n = positive_int(name, "order", order)
    nyq = sample_rate / 2
    edges = {"lowpass": [highcut], "highpass": [lowcut], "bandpass": [lowcut, highcut]}[kind]
    for edge in edges:
        if not 0 < number(name, "cut-off", edge) < nyq:
            raise TransformError(
                f"{name}: cut-off {edge} Hz must lie between 0 and the Nyquist frequency {nyq:g} Hz"
            )
    if kind == "bandpass" and not lowcut < highcut:
        raise TransformError(f"{name}: band pass needs lowcut < highcut, got {lowcut}, {highcut}")
    from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
    wn = edges[0] if len(edges) == 1 else edges
    if filtermethod == 0:
        return signal.butter(n, wn, btype=kind, fs=sample_rate, output="sos")
    return signal.cheby2(n, _CHEBYSHEV_STOP_DB, wn, btype=kind, fs=sample_rate, output="sos")


def filter_wav(
    f: Features,
    filtertype: int,
    filtermethod: int,
    order: int,
    lowcut: float = 0.0,
    highcut: float = 0.0,
    zero_phase: bool = False,
) -> Features:
    """Butterworth / Chebyshev II low, high or band pass, causal, from rest per segment.

    ``zero_phase`` (a pamlive extension): forward and backward, ``scipy.signal.sosfiltfilt``,
    as Koogu filters a whole recording; per segment it matches that only where the
    segment extends far enough beyond the samples kept (see :func:`settling_samples`).
    """
    require_wave(f, "filter_wav")
    from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
    sos = filter_sos(f.sample_rate, filtertype, filtermethod, order, lowcut, highcut)
    if flag("filter_wav", "zero_phase", zero_phase):
        return replace(f, data=signal.sosfiltfilt(sos, np.asarray(f.data, np.float64), axis=-1))
    y, _ = sos_filter(sos, f.data)
    return replace(f, data=y)


def settling_samples(sos: np.ndarray, tolerance: float = 1e-7) -> int:
    """Samples after which the filter's impulse response stays below ``tolerance`` of its
    peak: how far a segment must reach past the samples a zero-phase filter keeps."""
    from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
    n = 1024
    while True:
        impulse = np.zeros(n)
        impulse[0] = 1.0
        h = np.abs(signal.sosfilt(sos, impulse))
        above = np.flatnonzero(h > tolerance * h.max())
        if above[-1] < n // 2 or n >= 1 << 22:
            return int(above[-1]) + 1
        n *= 4


def sos_filter(
    sos: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``sosfilt(sos, x, axis=-1, zi=...)`` on ``(channels, samples)``, bit for bit.

    All channels go through the recurrence together (a Numba kernel over a
    samples-major float64 copy), which is several times faster than scipy's channel
    after channel. ``zi`` (sections, 2, channels) is the state carried between blocks
    (zeros: from rest); returns ``(y, final zi)`` with ``y`` as ``(channels, samples)``.
    """
    y = np.array(np.asarray(x).T, dtype=np.float64, order="C")  # (samples, channels)
    z = np.zeros((sos.shape[0], 2, y.shape[1])) if zi is None else zi.copy()
    kernels.sos_filter_channels(np.ascontiguousarray(sos, dtype=np.float64), y, z)
    return y.T, z


_PGNORM, _KETOSNORM, _MEANNORM, _ZSCORE = 0, 1, 2, 3


def normalize_wav(
    f: Features,
    mean: float | None = None,
    std: float | None = None,
    type: int | None = None,
) -> Features:
    """PAMGuard's ``AudioData.normalise``; without parameters: subtract mean, divide by max.

    ``type``: 0 PGNORM, 1 KETOSNORM (both on the 16-bit integer view, truncated as Java
    does), 2 MEANNORM (the default), 3 ZSCORE (population std).
    """
    require_wave(f, "normalize_wav")
    if type is None:
        type = _MEANNORM if mean is None and std is None else _PGNORM
    if type not in (0, 1, 2, 3):
        raise TransformError(f"normalize_wav: type must be 0, 1, 2 or 3, got {type!r}")
    t_mean = 0.0 if mean is None else number("normalize_wav", "mean", mean)
    t_std = 1.0 if std is None else number("normalize_wav", "std", std)
    x = np.asarray(f.data, dtype=np.float64)
    if type == _ZSCORE:
        sd = x.std(axis=1, keepdims=True)
        y = np.divide(x - x.mean(axis=1, keepdims=True), sd, out=np.zeros_like(x), where=sd > 0)
    elif type == _MEANNORM:
        centred = x - x.mean(axis=1, keepdims=True)
        peak = centred.max(axis=1, keepdims=True)
        y = np.divide(centred, peak, out=np.zeros_like(x), where=peak != 0)
    else:
        s = np.where(x == 1.0, _INT16_FULL_SCALE - 1, np.floor(x * _INT16_FULL_SCALE))
        m, sd = s.mean(axis=1, keepdims=True), s.std(axis=1, keepdims=True)
        safe_sd = np.where(sd > 0, sd, 1.0)
        if type == _KETOSNORM:
            y = np.trunc(t_std * (s - m) / safe_sd + t_mean)
        else:
            y = np.trunc(sd * (s - m) / (t_std + t_mean))
        y = y / _INT16_FULL_SCALE
    return replace(f, data=y)
