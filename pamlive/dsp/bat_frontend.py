"""batdetect2's front end (1.3.1 ``utils/audio_utils.py``) as pamlive transforms, each
reproducing batdetect2's own arithmetic without librosa: pad the window to a width the
network takes, magnitude STFT (librosa ``_spectrogram(power=1, center=False)``), frequency
crop, PCEN (``librosa.pcen``) and per-row mean subtraction.

After ``batdetect2_spectrogram`` a spectrum is in batdetect2's (image) layout, not
pamlive's: ``data`` is ``(n, rows, frames)``, row 0 the highest frequency, and ``freqs``
holds each row's frequency (descending). The chain ends in the ``(rows, W)`` spectrogram
batdetect2 resizes and feeds its network (the ONNX graph does the resize).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pamlive.dsp.features import (
    Features,
    number,
    positive_int,
    require_spectrum,
    require_wave,
)
from pamlive.dsp.kernels import one_pole_rows
from pamlive.dsp.windows import hann
from pamlive.errors import TransformError

# work in pieces that stay in a core's cache (and reuse their buffers): the same
# operations on each element as on the whole array, so no bit changes
STFT_BYTES = 1 << 19  # windowed frames (float64) per FFT piece: 128 frames of 512
PCEN_ROWS = 8  # rows per piece of PCEN: 8 rows of 6016 float64 frames


def padded_length(n: int, fft: int, hop: int, resize_factor: float, divide_factor: int) -> int:
    """Samples after batdetect2's ``pad_audio``: enough that the spectrogram's width times
    ``resize_factor`` is a multiple of ``divide_factor`` (and at least one multiple)."""
    overlap = fft - hop
    width = int(((n - overlap) // hop) * resize_factor)
    min_width = int(divide_factor / resize_factor)
    if width < min_width:
        target = min_width
    elif width % divide_factor == 0:
        return n
    else:
        target = int(np.ceil(width / divide_factor)) * divide_factor
    return int(int(target / resize_factor) * hop + overlap)


def batdetect2_pad(f: Features, fft: int, hop: int, resize_factor: float,
                   divide_factor: int) -> Features:
    """Zero-pad each segment at its end as batdetect2's ``pad_audio`` does."""
    require_wave(f, "batdetect2_pad")
    fft = positive_int("batdetect2_pad", "fft", fft)
    hop = positive_int("batdetect2_pad", "hop", hop)
    rf = number("batdetect2_pad", "resize_factor", resize_factor)
    if not 0 < rf <= 1:
        raise TransformError(f"batdetect2_pad: resize_factor must be in (0, 1], got {rf:g}")
    div = positive_int("batdetect2_pad", "divide_factor", divide_factor)
    n = f.data.shape[-1]
    extra = padded_length(n, fft, hop, rf, div) - n
    data = np.pad(f.data, [(0, 0)] * (f.data.ndim - 1) + [(0, extra)]) if extra > 0 else f.data
    return Features(data, f.sample_rate)


def batdetect2_spectrogram(f: Features, fft: int, hop: int) -> Features:
    """``|STFT|`` as librosa's ``_spectrogram(power=1, center=False)``: periodic Hann,
    frames from sample 0 every ``hop`` (none past the end), computed in float64 and
    stored in complex64, the magnitude of the contiguous spectrum (numpy's vector loop,
    as librosa's ``np.abs``: a reversed or one-frame view may take its scalar loop, which
    differs in the last bit), all as librosa does; then the DC row dropped and the rows
    flipped so that row 0 is the highest frequency: ``(n, fft // 2, frames)``. The frames
    go through the FFT in pieces that stay in cache."""
    require_wave(f, "batdetect2_spectrogram")
    fft = positive_int("batdetect2_spectrogram", "fft", fft)
    hop = positive_int("batdetect2_spectrogram", "hop", hop)
    x = np.asarray(f.data, np.float32)
    if x.shape[-1] < fft:
        raise TransformError(f"batdetect2_spectrogram: a segment of {x.shape[-1]} samples is "
                             f"shorter than one frame ({fft})")
    window = hann(fft)
    frames = sliding_window_view(x, fft, axis=-1)[..., ::hop, :]  # (n, frames, fft)
    out = np.empty((x.shape[0], fft // 2, frames.shape[1]), np.float32)
    step = max(1, STFT_BYTES // (8 * fft))  # frames per FFT piece
    work = np.empty((min(step, frames.shape[1]), fft))
    for seg in range(x.shape[0]):
        for a in range(0, frames.shape[1], step):
            windowed = work[:min(step, frames.shape[1] - a)]
            np.multiply(frames[seg, a:a + step], window, out=windowed)
            spec = np.fft.rfft(windowed, axis=-1).astype(np.complex64)
            out[seg, :, a:a + step] = np.abs(spec)[:, :0:-1].T
    freqs = np.arange(fft // 2, 0, -1) * (f.sample_rate / fft)
    return Features(out, f.sample_rate, freqs)


def batdetect2_crop(f: Features, fmin: float, fmax: float) -> Features:
    """Keep the rows batdetect2's ``generate_spectrogram`` keeps: from row
    ``-round(fmax * fft / sr)`` to ``rows - round(fmin * fft / sr)`` (zero rows added on top
    if the spectrum does not reach ``fmax``)."""
    freqs = require_spectrum(f, "batdetect2_crop")
    lo, hi = number("batdetect2_crop", "fmin", fmin), number("batdetect2_crop", "fmax", fmax)
    rows = f.data.shape[-2]
    fft = 2 * rows
    top, bottom = round(hi * fft / f.sample_rate), round(lo * fft / f.sample_rate)
    if not 0 <= bottom < top:
        raise TransformError(f"batdetect2_crop: {lo:g}-{hi:g} Hz holds no spectrum row")
    data = f.data
    if rows < top:
        pad = top - rows
        data = np.concatenate([np.zeros((*data.shape[:-2], pad, data.shape[-1]), data.dtype),
                               data], axis=-2)
        freqs = np.concatenate([freqs[0] + (f.sample_rate / fft) * np.arange(pad, 0, -1),
                                freqs])
    n = data.shape[-2]
    return Features(data[..., n - top:n - bottom, :], f.sample_rate, freqs[n - top:n - bottom])


def pcen(f: Features, sr: float, hop: int, scale: float = 1.0, gain: float = 0.98,
         bias: float = 2.0, power: float = 0.5, time_constant: float = 0.4,
         eps: float = 1e-6) -> Features:
    """Per-channel energy normalisation along time, as ``librosa.pcen(S * scale, sr=sr,
    hop_length=hop)`` with its defaults (``max_size`` 1, smoother started at
    ``lfilter_zi``). ``sr``/``hop`` only set the smoother's time constant in frames;
    batdetect2 passes ``sr = rate / 10`` and librosa's default ``hop`` 512."""
    require_spectrum(f, "pcen")
    name = "pcen"
    sr, scale = number(name, "sr", sr), number(name, "scale", scale)
    hop = positive_int(name, "hop", hop)
    gain, bias = number(name, "gain", gain), number(name, "bias", bias)
    power, tc = number(name, "power", power), number(name, "time_constant", time_constant)
    eps = number(name, "eps", eps)
    if sr <= 0 or tc <= 0 or eps <= 0 or power <= 0 or bias <= 0 or gain < 0:
        raise TransformError("pcen: sr, time_constant, eps, power and bias must be positive "
                             "and gain non-negative")
    t_frames = tc * sr / float(hop)
    b = (np.sqrt(1 + 4 * t_frames**2) - 1) / (2 * t_frames**2)
    from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
    z_init = float(signal.lfilter_zi([b], [1, b - 1])[0])
    data = np.asarray(f.data, np.float32)
    # (segments, rows, frames): a view of a cropped spectrum, not a copy
    planes = data.reshape(int(np.prod(data.shape[:-2])), *data.shape[-2:])
    out = np.empty(planes.shape, np.float32)
    work = np.empty((min(PCEN_ROWS, planes.shape[1]), planes.shape[2]))
    for plane, result in zip(planes, out, strict=True):
        for a in range(0, plane.shape[0], PCEN_ROWS):
            part = plane[a:a + PCEN_ROWS] * np.float32(scale)
            y = work[:part.shape[0]]
            one_pole_rows(part, b, b - 1, z_init, y)  # the smoothed energy
            _pcen_from_smoothed(part, y, gain, bias, power, eps)
            result[a:a + PCEN_ROWS] = y
    return Features(out.reshape(data.shape), f.sample_rate, f.freqs)


def _pcen_from_smoothed(s: np.ndarray, y: np.ndarray, gain: float, bias: float,
                        power: float, eps: float) -> None:
    """In place, ``y`` (the smoothed ``s``) becomes librosa's PCEN of ``s``, with its
    operations in its order (``exp(-gain (log eps + log1p(y / eps)))`` and ``bias**power
    expm1(power log1p(s smooth / bias))``, float64): bit for bit, in cache-sized pieces."""
    np.divide(y, eps, out=y)
    np.log1p(y, out=y)
    np.add(np.log(eps), y, out=y)
    np.multiply(-gain, y, out=y)
    np.exp(y, out=y)
    np.multiply(s, y, out=y)
    np.divide(y, bias, out=y)
    np.log1p(y, out=y)
    np.multiply(power, y, out=y)
    np.expm1(y, out=y)
    np.multiply(bias**power, y, out=y)


def batdetect2_denoise(f: Features) -> Features:
    """Subtract each row's mean over the segment and clip at zero (``denoise_spec_avg``)."""
    require_spectrum(f, "batdetect2_denoise")
    data = np.asarray(f.data, np.float32)
    out = data - data.mean(axis=-1, keepdims=True)
    return Features(out.clip(min=0, out=out), f.sample_rate, f.freqs)
