"""PAMGuard's spectrum transforms (``(n, frames, bins)`` in and out, float32 out)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pamlive.dsp import kernels
from pamlive.dsp.features import (
    Features,
    flag,
    number,
    positive_int,
    require_spectrum,
    with_spectrum,
)
from pamlive.errors import TransformError

# jpamutils SpecTransform.dBSpec: the value used for log10 of non-positive input
LOG_EPS = 1.4210854715202004e-14


def interp_plan(
    freqs: np.ndarray,
    bins: int,
    fmin: float,
    fmax: float,
    pamguard_exact: bool,
    sample_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, weight, new_freqs)`` so that ``out_j = (1-w_j) X[lo_j] + w_j X[lo_j+1]``."""
    name = "freq_compression"
    n_out = positive_int(name, "bins", bins)
    fmin, fmax = number(name, "fmin", fmin), number(name, "fmax", fmax)
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise TransformError(
            f"{name}: need 0 <= fmin < fmax <= {sample_rate / 2:g} Hz, "
            f"got fmin={fmin:g}, fmax={fmax:g}"
        )
    nb = freqs.size
    if flag(name, "pamguard_exact", pamguard_exact):  # jpamutils: crop, nearest neighbour
        lo_bin = max(0, int(nb * (fmin / (sample_rate / 2))))
        hi_bin = min(nb, int(nb * (fmax / (sample_rate / 2))))
        width = hi_bin - lo_bin
        if width <= 0:
            raise TransformError(f"{name}: {fmin:g}-{fmax:g} Hz holds no spectrum bin")
        pick = (
            np.arange(width)
            if n_out == width
            else np.floor(np.arange(n_out) * (width / n_out)).astype(np.int64)
        )
        lo = (lo_bin + pick).astype(np.int64)
        return lo, np.zeros(lo.size), freqs[lo]
    target = np.linspace(fmin, fmax, n_out)
    pos = np.interp(target, freqs, np.arange(nb, dtype=np.float64))
    lo = np.clip(np.floor(pos).astype(np.int64), 0, nb - 1)
    weight = np.where(lo < nb - 1, pos - lo, 0.0)
    return lo, weight, target


def freq_compression(
    f: Features,
    bins: int,
    fmin: float,
    fmax: float,
    pamguard_exact: bool = False,
) -> Features:
    """Each frame onto ``bins`` frequencies from fmin to fmax (linear interpolation).

    ``pamguard_exact``: jpamutils' crop to whole bins then nearest neighbour.
    """
    freqs = require_spectrum(f, "freq_compression")
    lo, weight, target = interp_plan(freqs, bins, fmin, fmax, pamguard_exact, f.sample_rate)
    data = np.asarray(f.data, dtype=np.float64)
    lo1 = np.minimum(lo + 1, freqs.size - 1)
    out = data[..., lo] * (1 - weight) + data[..., lo1] * weight
    return Features(out.astype(np.float32), f.sample_rate, target)


def freq_trim(f: Features, fmin: float, fmax: float) -> Features:
    """Keep the bins whose centre frequency lies in ``[fmin, fmax]`` (no interpolation)."""
    freqs = require_spectrum(f, "freq_trim")
    lo, hi = number("freq_trim", "fmin", fmin), number("freq_trim", "fmax", fmax)
    keep = (freqs >= lo) & (freqs <= hi)
    if not np.any(keep):
        raise TransformError(f"freq_trim: {lo:g}-{hi:g} Hz holds no spectrum bin")
    return Features(f.data[..., keep], f.sample_rate, freqs[keep])


def norm_row_sum(f: Features, pamguard_exact: bool = False) -> Features:
    """Divide each time frame (row) by its sum, so every frame sums to one.

    ``pamguard_exact``: jpamutils divides the whole segment by the square root of the
    sum of all squared values instead.
    """
    require_spectrum(f, "norm_row_sum")
    data = np.array(f.data, dtype=np.float32)
    if flag("norm_row_sum", "pamguard_exact", pamguard_exact):
        d = data.astype(np.float64)
        tot = np.sqrt((d * d).sum(axis=(-2, -1), keepdims=True))
        return with_spectrum(f, np.divide(d, tot, out=d.copy(), where=tot != 0))
    flat = data.reshape(-1, data.shape[-1])
    kernels.divide_rows_by_sum(flat)
    return replace(f, data=flat.reshape(data.shape))


@dataclass(frozen=True)
class ValueMap:
    """Per-value spectrum transforms folded into one in-place float32 map.

    ``clip(max(log10(x) * gain, floor) * scale + offset, lo, hi)`` (the log only if
    ``log``; ``x <= 0`` read as ``LOG_EPS``), with the same float32 operations in the
    same order as ``amplitude_to_decibel`` / ``spec_log10``, ``normalize`` and ``clamp``
    run one after the other, so a chain that folds them into the spectrogram's chunk
    loop gets the same bits. ``stage`` is the last kind folded in (1 log, 2 affine,
    3 clip): a map only takes transforms of a later kind.
    """

    stage: int
    log: bool = False
    gain: float = 1.0
    floor: float = -math.inf
    scale: float = 1.0
    offset: float = 0.0
    lo: float = -math.inf
    hi: float = math.inf

    def then(self, later: ValueMap) -> ValueMap | None:
        """This map followed by ``later``, or None if ``later`` is not of a later kind."""
        if later.stage <= self.stage:
            return None
        default = ValueMap(later.stage)
        changed = {k: v for k, v in vars(later).items() if v != getattr(default, k)}
        return replace(self, **changed)

    def apply(self, data: np.ndarray) -> None:
        """Map ``data`` (C-contiguous float32) in place."""
        if self.log:
            kernels.nonpositive_to(data, np.float32(LOG_EPS))
            np.log10(data, out=data)
        f32 = np.float32
        kernels.scale_floor_affine_clip(
            data,
            f32(self.gain),
            f32(self.floor),
            f32(self.scale),
            f32(self.offset),
            f32(self.lo),
            f32(self.hi),
        )

    def applied(self, f: Features) -> Features:
        out = np.array(f.data, dtype=np.float32, order="C")
        self.apply(out)
        return with_spectrum(f, out)


def decibel_map(min_db: float = -500.0) -> ValueMap:
    floor = number("amplitude_to_decibel", "min_db", min_db)
    return ValueMap(1, log=True, gain=20.0, floor=floor)


def log10_map() -> ValueMap:
    return ValueMap(1, log=True)


def normalize_map(min_db: float | str, ref_db: float = 0.0) -> ValueMap | None:
    """``normalize`` as a map: ``2 (x - ref_db - min_db) / -min_db - 1.1407`` in float32
    as ``a x + b``; None for ``min_db`` ``"None"`` (min-max over the segment)."""
    if str(min_db) == "None":
        return None
    lo = number("normalize", "min_db", min_db)
    ref = number("normalize", "ref_db", ref_db)
    if lo == 0:
        raise TransformError("normalize: min_db must not be 0")
    return ValueMap(2, scale=2.0 / -lo, offset=2.0 * (-ref - lo) / -lo - 1.1407)


def clamp_map(min: float = 0.0, max: float = 1.0) -> ValueMap:
    lo, hi = number("clamp", "min", min), number("clamp", "max", max)
    if lo > hi:
        raise TransformError(f"clamp: min {lo:g} exceeds max {hi:g}")
    return ValueMap(3, lo=lo, hi=hi)


# transform name -> its map from its (validated) parameters, or None if it has none
VALUE_MAPS: dict[str, Callable[..., ValueMap | None]] = {
    "amplitude_to_decibel": decibel_map,
    "spec_log10": log10_map,
    "normalize": normalize_map,
    "clamp": clamp_map,
}


def amplitude_to_decibel(f: Features, min_db: float = -500.0) -> Features:
    """``20 log10(x)`` (``x <= 0`` -> ``20 log10(1.42e-14)``), floored at ``min_db``."""
    require_spectrum(f, "amplitude_to_decibel")
    return decibel_map(min_db).applied(f)


def spec_log10(f: Features) -> Features:
    """``log10(x)``, with ``x <= 0`` taken as ``1.42e-14`` like ``amplitude_to_decibel``."""
    require_spectrum(f, "spec_log10")
    return log10_map().applied(f)


def clamp(f: Features, min: float = 0.0, max: float = 1.0) -> Features:
    """Clip values to ``[min, max]`` (PAMGuard always uses 0 and 1)."""
    require_spectrum(f, "clamp")
    return clamp_map(min, max).applied(f)


def normalize(f: Features, min_db: float | str, ref_db: float = 0.0) -> Features:
    """jpamutils ``normalise``: ``2 (x - ref_db - min_db) / -min_db - 1.1407``.

    A ``min_db`` of ``"None"`` (AnimalSpot metadata) means min-max normalisation.
    """
    require_spectrum(f, "normalize")
    value_map = normalize_map(min_db, ref_db)
    return normalize_min_max(f) if value_map is None else value_map.applied(f)


def _per_segment(data: np.ndarray) -> np.ndarray:
    return np.asarray(data, dtype=np.float64).reshape(data.shape[0], -1)


def normalize_min_max(f: Features) -> Features:
    """``(x - min) / (max - min)`` over each whole segment (constant segment -> 0)."""
    require_spectrum(f, "normalize_min_max")
    d = _per_segment(f.data)
    lo, hi = d.min(axis=1, keepdims=True), d.max(axis=1, keepdims=True)
    span = hi - lo
    out = np.divide(d - lo, span, out=np.zeros_like(d), where=span > 0)
    return with_spectrum(f, out.reshape(f.data.shape))


def normalisestd(f: Features, mean: float = 0.0, std: float = 1.0) -> Features:
    """Each segment to the given mean and (population) std; unchanged if its std is 0."""
    require_spectrum(f, "normalisestd")
    t_mean, t_std = number("normalisestd", "mean", mean), number("normalisestd", "std", std)
    d = _per_segment(f.data)
    m, sd = d.mean(axis=1, keepdims=True), d.std(axis=1, keepdims=True)
    out = np.where(sd > 0, (d - m) / np.where(sd > 0, sd, 1.0) * t_std + t_mean, d)
    return with_spectrum(f, out.reshape(f.data.shape))


def reduce_tonal_noise_median(f: Features) -> Features:
    """Subtract from every frequency bin its median over the segment's frames."""
    require_spectrum(f, "reduce_tonal_noise_median")
    d = np.asarray(f.data, dtype=np.float64)
    return with_spectrum(f, d - np.median(d, axis=-2, keepdims=True))


def reduce_tonal_noise_mean(f: Features, time_const_len: float = 30) -> Features:
    """Subtract a running mean per bin (Baumgartner & Mussoline 2011, as Ketos does).

    ``eps = 1 - exp(ln(0.15) / time_const_len)``; the running mean starts at the bin's
    mean over the segment; ``out[t] = x[t] - r; r = (1 - eps) r + eps x[t]``.
    """
    require_spectrum(f, "reduce_tonal_noise_mean")
    t = number("reduce_tonal_noise_mean", "time_const_len", time_const_len)
    if t <= 0:
        raise TransformError(f"reduce_tonal_noise_mean: time_const_len must be positive, got {t}")
    eps = 1.0 - math.exp(math.log(0.15) / t)
    d = np.asarray(f.data, dtype=np.float64)
    # r[t+1] = (1-eps) r[t] + eps x[t] from r[0] = mean: a causal IIR along time
    r0 = d.mean(axis=-2, keepdims=True)
    from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
    running, _ = signal.lfilter([0.0, eps], [1.0, eps - 1.0], d, axis=-2, zi=r0)
    return with_spectrum(f, d - running)


_TONAL_METHODS = ("MEDIAN", "RUNNING_MEAN")


def reduce_tonal_noise(f: Features, method: str = "MEDIAN", time_const_len: float = 30) -> Features:
    """Ketos' form: ``method`` ``MEDIAN`` or ``RUNNING_MEAN`` (as PAMGuard maps it)."""
    if method not in _TONAL_METHODS:
        raise TransformError(
            f"reduce_tonal_noise: method must be MEDIAN or RUNNING_MEAN, got {method!r}"
        )
    if method == "MEDIAN":
        return reduce_tonal_noise_median(f)
    return reduce_tonal_noise_mean(f, time_const_len)


def spec_resize(f: Features, time_bins: int, freq_bins: int) -> Features:
    """Bilinear resize to ``(time_bins, freq_bins)``, corner pixels kept in place."""
    freqs = require_spectrum(f, "spec_resize")
    nt = positive_int("spec_resize", "time_bins", time_bins)
    nf = positive_int("spec_resize", "freq_bins", freq_bins)
    d = np.asarray(f.data, dtype=np.float64)
    d = _linear_resample(d, nt, axis=-2)
    d = _linear_resample(d, nf, axis=-1)
    new_freqs = np.linspace(freqs[0], freqs[-1], nf)
    return Features(d.astype(np.float32), f.sample_rate, new_freqs)


def _linear_resample(d: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` onto ``n_out`` points spanning the same ends."""
    n_in = d.shape[axis]
    if n_in == n_out:
        return d
    pos = np.linspace(0.0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
    lo = np.clip(np.floor(pos).astype(np.intp), 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    w = pos - lo
    shape = [1] * d.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    return np.take(d, lo, axis=axis) * (1 - w) + np.take(d, hi, axis=axis) * w
