"""Ketos ``audio_repr.json`` -> pamlive transform chain (PAMGuard names and parameters).

Ketos (``ketos.audio.utils.misc``) frames a segment of ``duration`` seconds at ``rate``
into ``num_segs = ceil(duration * rate / step_len)`` windows of ``win_len`` samples
(window and step rounded up to even sample counts), centred so that frame ``i`` starts
at ``i * step_len - win_len/2 + step_len/2``; each frame is multiplied by a symmetric
Hamming window, ``|rfft|`` keeps ``win_len/2 + 1`` bins, ``20 log10`` gives decibels and
the listed transforms follow. PAMGuard and pamlive cut the *extended* segment
``[offset - (win_len - step_len)/2, ...)`` so every frame lies inside real audio, and
frame ``i`` starts at ``i * step_len`` of it: the same frames without padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pamlive.dsp.chain import TransformSpec
from pamlive.errors import ModelError

# Ketos MagSpectrogram options pamlive's chain reproduces
_SUPPORTED_TYPE = "MagSpectrogram"
_WINDOW_FUNCS = ("hamming",)
_IGNORED_KEYS = {"type", "rate", "window", "step", "freq_min", "freq_max", "window_func",
                 "duration", "normalize_wav", "transforms", "decibel", "dtype", "input_ndims",
                 "resample_method", "waveform_transforms", "compute_phase", "channel",
                 "pad_mode", "smooth",
                 "input_shape"}


@dataclass(frozen=True)
class KetosRepresentation:
    """What a Ketos magnitude spectrogram needs, in samples, and its pamlive chain."""

    rate: int
    duration_s: float
    win_len: int
    step_len: int
    num_segs: int
    n_bins: int
    freq_range: tuple[float, float]
    transforms: list[TransformSpec]

    @property
    def segment_samples(self) -> int:
        """Samples of the extended segment (Ketos ``duration_ext``, PAMGuard's seglen)."""
        return self.num_segs * self.step_len + self.win_len

    @property
    def segment_s(self) -> float:
        return self.segment_samples / self.rate

    @property
    def lead_samples(self) -> int:
        """How far before the nominal segment start the first frame begins."""
        return self.win_len // 2 - self.step_len // 2

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_segs, self.n_bins)


def num_samples(time: float, rate: float, even: bool = False) -> int:
    """Ketos ``num_samples``: a time in samples, rounded up (to an even count if asked)."""
    if even:
        return int(2 * np.ceil(0.5 * time * rate))
    return int(np.ceil(time * rate))


def quantity(value: Any, key: str, where: str) -> float:
    """A Ketos value like ``"0.256 s"``, ``"1 kHz"`` or a bare number, in s or Hz."""
    scale = {"s": 1.0, "ms": 1e-3, "hz": 1.0, "khz": 1e3}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        parts = value.split()
        try:
            number = float(parts[0])
        except (IndexError, ValueError):
            number = None
        unit = parts[1].lower() if len(parts) > 1 else "s"
        if number is not None and unit in scale and len(parts) <= 2:
            return number * scale[unit]
    raise ModelError(f"{where}: cannot read {key}={value!r} (expected e.g. '0.256 s' or '1000 Hz')")


def ketos_crop(fmin: float, fmax: float, nyquist: float, n_bins: int) -> tuple[int, int]:
    """First and last bin Ketos keeps for ``freq_min``/``freq_max`` (``Spectrogram.crop``:
    ``LinearAxis.cut`` over ``n_bins`` bins of ``nyquist / n_bins`` Hz, the bins holding
    both cut values included, the upper one closed on the right)."""
    res = nyquist / n_bins
    lo = min(max(fmin / res, 0.0), n_bins - 1)
    top = fmax / res
    if top % 1 == 0 and top > 0:
        top -= 1
    hi = min(max(top, 0.0), n_bins - 1)
    return int(lo), int(hi)


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def representation_spec(doc: Any, where: str) -> dict[str, Any]:
    """The single representation object in an ``audio_repr.json`` document (an object,
    or a list holding one, as Ketos also writes it)."""
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    if not isinstance(doc, dict) or not doc:
        raise ModelError(f"{where}: audio_repr.json must hold a JSON object")
    reprs = {k: v for k, v in doc.items() if isinstance(v, dict)}
    if len(reprs) != 1:
        raise ModelError(f"{where}: expected one audio representation, found "
                         f"{sorted(reprs) or 'none'}")
    return next(iter(reprs.values()))


def translate(doc: Any, where: str) -> KetosRepresentation:
    """Translate an ``audio_repr.json`` document; an unknown transform is named."""
    spec = representation_spec(doc, where)
    kind = spec.get("type")
    if kind != _SUPPORTED_TYPE:
        raise ModelError(f"{where}: Ketos representation '{kind}' needs a transform pamlive "
                         f"lacks (pamlive translates {_SUPPORTED_TYPE})")
    for key in ("rate", "window", "step", "duration"):
        if key not in spec:
            raise ModelError(f"{where}: audio_repr.json lacks '{key}'")
    window_func = str(spec.get("window_func", "hamming")).lower()
    if window_func not in _WINDOW_FUNCS:
        raise ModelError(f"{where}: Ketos window_func '{window_func}' needs a transform pamlive "
                         "lacks (spectrogramketos uses a Hamming window)")
    rate = quantity(spec["rate"], "rate", where)
    if rate != int(rate) or rate <= 0:
        raise ModelError(f"{where}: rate must be a positive whole number of Hz, got {rate:g}")
    rate = int(rate)
    duration = quantity(spec["duration"], "duration", where)
    win_len = num_samples(quantity(spec["window"], "window", where), rate, even=True)
    step_len = num_samples(quantity(spec["step"], "step", where), rate, even=True)
    if win_len <= 0 or step_len <= 0 or duration <= 0:
        raise ModelError(f"{where}: window, step and duration must be positive")
    num_segs = num_samples(duration, rate / step_len)
    nyquist = rate / 2
    fmin = quantity(spec.get("freq_min", 0), "freq_min", where)
    fmax = min(quantity(spec.get("freq_max", nyquist), "freq_max", where), nyquist)
    if not 0 <= fmin < fmax:
        raise ModelError(f"{where}: need 0 <= freq_min < freq_max, got {fmin:g}, {fmax:g} Hz")

    # Ketos resamples each segment on its own, by default with scipy's FFT resampler:
    # PAMGuard's load_audio_scipy (pamlive.dsp.segment_resample; docs/import-models.md);
    # librosa's other methods are band-limited interpolators, the stream resampler's kind
    method = str(spec.get("resample_method", "scipy")).lower()
    chain = [TransformSpec("load_audio_scipy" if method == "scipy" else "load_audio",
                           {"sr": rate})]
    if _flag(spec.get("compute_phase", False)):
        raise ModelError(f"{where}: Ketos compute_phase (a phase channel) needs a transform "
                         "pamlive lacks")
    for t in spec.get("waveform_transforms", []) or []:  # Waveform.from_wav: before
        chain.append(_waveform_transform(t, where))      # normalize_wav
    if _flag(spec.get("normalize_wav", False)):
        chain.append(TransformSpec("normalize_wav", {"type": 3}))  # Ketos: zero mean, unit std
    # window_size such that PAMGuard's frame count ceil((w - fft/sr) sr/hop) is num_segs
    # whatever the float round-off: half a hop short of the extended segment
    window_size = ((num_segs - 0.5) * step_len + win_len) / rate
    # all_bins: Ketos' win_len/2 + 1 bins (jpamutils drops the Nyquist bin when
    # win_len/4 is whole, e.g. the right whale model's 256-point FFT)
    chain.append(TransformSpec("spectrogramketos", {"fft": win_len, "hop": step_len,
                                                    "window_size": window_size,
                                                    "all_bins": True}))
    ketos_bins = win_len // 2 + 1
    if spec.get("decibel", True) is not False and str(spec.get("decibel")).lower() != "false":
        chain.append(TransformSpec("amplitude_to_decibel", {}))
    step_s = step_len / rate
    for t in spec.get("transforms", []) or []:
        chain.append(_transform(t, step_s, where))
    # Ketos crops AFTER its transforms (MagSpectrogram.from_waveform: the constructor
    # applies them to all bins, then crop), so a normalize sees every bin
    lo, hi = ketos_crop(fmin, fmax, nyquist, ketos_bins)
    n_bins = hi - lo + 1
    if n_bins < ketos_bins:  # freq_trim keeps bins lo..hi (centres k * rate / win_len)
        df = rate / win_len
        chain.append(TransformSpec("freq_trim", {"fmin": (lo - 0.5) * df,
                                                 "fmax": (hi + 0.5) * df}))
    unknown = set(spec) - _IGNORED_KEYS
    if unknown:
        raise ModelError(f"{where}: audio_repr.json option(s) pamlive cannot honour: "
                         f"{', '.join(sorted(unknown))}")
    return KetosRepresentation(rate, duration, win_len, step_len, num_segs, n_bins,
                               (fmin, fmax), chain)


def _waveform_transform(t: Any, where: str) -> TransformSpec:
    """A Ketos waveform transform: only ``normalize`` to mean 0, std 1 has a pamlive twin."""
    if not isinstance(t, dict) or "name" not in t:
        raise ModelError(f"{where}: malformed Ketos waveform transform {t!r}")
    if (t["name"] == "normalize" and float(t.get("mean", 0.0)) == 0.0
            and float(t.get("std", 1.0)) == 1.0):
        return TransformSpec("normalize_wav", {"type": 3})
    raise ModelError(f"{where}: Ketos waveform transform '{t['name']}' needs a transform "
                     "pamlive lacks")


def _transform(t: Any, step_s: float, where: str) -> TransformSpec:
    """One Ketos spectrogram transform as a pamlive/PAMGuard transform."""
    if not isinstance(t, dict) or "name" not in t:
        raise ModelError(f"{where}: malformed Ketos transform {t!r}")
    name = t["name"]
    args = {k: v for k, v in t.items() if k != "name"}
    if name == "normalize":
        return TransformSpec("normalisestd", {"mean": float(args.get("mean", 0.0)),
                                              "std": float(args.get("std", 1.0))})
    if name == "reduce_tonal_noise":
        method = str(args.get("method", "MEDIAN")).upper()
        params: dict[str, Any] = {"method": method}
        if method == "RUNNING_MEAN":
            if "time_const_len" in args:
                params["time_const_len"] = int(args["time_const_len"])
            elif "time_constant" in args:
                seconds = quantity(args["time_constant"], "time_constant", where)
                params["time_const_len"] = max(1, math.ceil(seconds / step_s))
        return TransformSpec("reduce_tonal_noise", params)
    raise ModelError(f"{where}: Ketos transform '{name}' needs a transform pamlive lacks")
