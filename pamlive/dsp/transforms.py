"""PAMGuard deep-learning transforms: the registry of names, parameters and stages.

Names and parameters follow PAMGuard's JSON metadata (``.pdtf``; see
``docs/transforms.md``); the registry maps a name to the function, the parameters it
accepts and its stage, so an unknown name or parameter is an error that names it.

Stages: ``load`` (resampling, done on the stream by
:class:`~pamlive.dsp.resample.StreamResampler`), ``wave`` (waveform -> waveform,
:mod:`.wave`), ``stft`` (waveform -> spectrum, :mod:`.spectrogram`) and ``spec``
(spectrum -> spectrum, :mod:`.spectra`). ``streams`` says whether a transform can run on
the continuous stream (stateful filters, per-frame spectrum transforms) or needs the
whole segment (segment statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pamlive.dsp.bat_frontend import (
    batdetect2_crop,
    batdetect2_denoise,
    batdetect2_pad,
    batdetect2_spectrogram,
    pcen,
)
from pamlive.dsp.features import Features
from pamlive.dsp.spectra import (
    amplitude_to_decibel,
    clamp,
    freq_compression,
    freq_trim,
    norm_row_sum,
    normalisestd,
    normalize,
    normalize_min_max,
    reduce_tonal_noise,
    reduce_tonal_noise_mean,
    reduce_tonal_noise_median,
    spec_log10,
    spec_resize,
)
from pamlive.dsp.spectrogram import spectrogram, spectrogramketos
from pamlive.dsp.wave import filter_wav, normalize_wav, pre_emph, trim
from pamlive.errors import TransformError

__all__ = ["REGISTRY", "REQUIRED", "Features", "TransformDef"]

REQUIRED = object()  # marks a parameter without a default in TransformDef.params


@dataclass(frozen=True)
class TransformDef:
    name: str
    func: Callable[..., Features]
    params: Mapping[str, Any]  # accepted parameter -> default (REQUIRED: must be given)
    stage: str  # "load", "wave", "stft" or "spec"
    # True if the transform can run on the continuous stream for these params
    streams: Callable[[Mapping[str, Any]], bool]


def _load_audio(f: Features, sr: int) -> Features:
    """Resampling happens on the stream (``StreamResampler``); here it only checks."""
    if f.sample_rate != sr:
        raise TransformError(f"load_audio: segment is at {f.sample_rate} Hz, expected {sr} Hz")
    return f


# --------------------------------------------------------------------------- registry


def _always(_: Mapping[str, Any]) -> bool:
    return True


def _never(_: Mapping[str, Any]) -> bool:
    return False


def _not_exact(p: Mapping[str, Any]) -> bool:
    return not p.get("pamguard_exact", False)


def _not_zero_phase(p: Mapping[str, Any]) -> bool:
    return not p.get("zero_phase", False)


def _numeric_min_db(p: Mapping[str, Any]) -> bool:
    return str(p.get("min_db")) != "None"


def _def(name, func, params, stage, streams=_always) -> TransformDef:
    return TransformDef(name, func, params, stage, streams)


REGISTRY: dict[str, TransformDef] = {
    t.name: t
    for t in (
        _def("load_audio", _load_audio, {"sr": REQUIRED}, "load"),
        _def("load_audio_scipy", _load_audio, {"sr": REQUIRED}, "load"),
        _def("pre_emph", pre_emph, {"pre_empf_factor": REQUIRED}, "wave"),
        _def("trim", trim, {"min": REQUIRED, "max": REQUIRED}, "wave", _never),
        _def(
            "filter_wav",
            filter_wav,
            {
                "filtertype": REQUIRED,
                "filtermethod": REQUIRED,
                "order": REQUIRED,
                "lowcut": 0.0,
                "highcut": 0.0,
                "zero_phase": False,
            },
            "wave",
            _not_zero_phase,
        ),
        _def(
            "normalize_wav",
            normalize_wav,
            {"mean": None, "std": None, "type": None},
            "wave",
            _never,
        ),
        _def(
            "spectrogram",
            spectrogram,
            {"fft": REQUIRED, "hop": REQUIRED, "pamguard_exact": False},
            "stft",
        ),
        _def(
            "spectrogramketos",
            spectrogramketos,
            {"fft": REQUIRED, "hop": REQUIRED, "window_size": REQUIRED, "all_bins": False},
            "stft",
        ),
        _def(
            "freq_compression",
            freq_compression,
            {"bins": REQUIRED, "fmin": REQUIRED, "fmax": REQUIRED, "pamguard_exact": False},
            "spec",
        ),
        _def("freq_trim", freq_trim, {"fmin": REQUIRED, "fmax": REQUIRED}, "spec"),
        _def("normalize", normalize, {"min_db": REQUIRED, "ref_db": 0.0}, "spec", _numeric_min_db),
        _def("normalize_min_max", normalize_min_max, {}, "spec", _never),
        _def("norm_row_sum", norm_row_sum, {"pamguard_exact": False}, "spec", _not_exact),
        _def("amplitude_to_decibel", amplitude_to_decibel, {"min_db": -500.0}, "spec"),
        _def("spec_log10", spec_log10, {}, "spec"),
        _def("clamp", clamp, {"min": 0.0, "max": 1.0}, "spec"),
        _def("normalisestd", normalisestd, {"mean": 0.0, "std": 1.0}, "spec", _never),
        _def("reduce_tonal_noise_median", reduce_tonal_noise_median, {}, "spec", _never),
        _def(
            "reduce_tonal_noise_mean",
            reduce_tonal_noise_mean,
            {"time_const_len": 30},
            "spec",
            _never,
        ),
        _def(
            "reduce_tonal_noise",
            reduce_tonal_noise,
            {"method": "MEDIAN", "time_const_len": 30},
            "spec",
            _never,
        ),
        _def(
            "spec_resize",
            spec_resize,
            {"time_bins": REQUIRED, "freq_bins": REQUIRED},
            "spec",
            _never,
        ),
        # batdetect2's front end (pamlive.dsp.bat_frontend): whole-window, image layout
        _def(
            "batdetect2_pad",
            batdetect2_pad,
            {"fft": REQUIRED, "hop": REQUIRED, "resize_factor": REQUIRED,
             "divide_factor": REQUIRED},
            "wave",
            _never,
        ),
        _def("batdetect2_spectrogram", batdetect2_spectrogram,
             {"fft": REQUIRED, "hop": REQUIRED}, "stft", _never),
        _def("batdetect2_crop", batdetect2_crop, {"fmin": REQUIRED, "fmax": REQUIRED}, "spec",
             _never),
        _def(
            "pcen",
            pcen,
            {"sr": REQUIRED, "hop": REQUIRED, "scale": 1.0, "gain": 0.98, "bias": 2.0,
             "power": 0.5, "time_constant": 0.4, "eps": 1e-6},
            "spec",
            _never,
        ),
        _def("batdetect2_denoise", batdetect2_denoise, {}, "spec", _never),
    )
}
