"""Koogu models as Koogu itself saves them: a TensorFlow SavedModel folder whose
``with_transformation`` signature takes raw audio clips (Koogu's ``NormalizeAudio`` and
spectral layers run inside the graph), class names in ``assets/classes_list.json``.

Koogu writes the audio settings it was trained with to ``assets/audio_settings.json``
(``desired_fs``, ``clip_length``, ``filterspec``, ``normalize_clips``): the rate, its
Butterworth filter (applied as Koogu applies it, see :func:`whole_recording_filters`)
and the clip normalisation come from there. A model shipped without that file (the
Koogu right whale model) carries no sample rate, so it must be given with
``--sample-rate``: pamlive never guesses one. (``.kgu`` archives, Koogu
models packaged for PAMGuard, are read by :mod:`pamlive.importers.pamguard`.)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pamlive.dsp.chain import TransformSpec
from pamlive.dsp.wave import filter_sos, settling_samples
from pamlive.errors import ModelError
from pamlive.importers import tfconvert
from pamlive.importers.formats import read_json, require_file
from pamlive.importers.model import ImportedModel, ImportOptions, class_names

SIGNATURE = "with_transformation"
CLASSES = "assets/classes_list.json"
AUDIO_SETTINGS = "assets/audio_settings.json"


def import_savedmodel(source: Path, work: Path, options: ImportOptions) -> ImportedModel:
    folder = source if source.is_dir() else source.parent
    own = read_json(require_file(folder, CLASSES, source, "class list"), source)
    if not isinstance(own, list) or not all(isinstance(c, str) for c in own) or not own:
        raise ModelError(f"{source}: {CLASSES} must be a JSON list of class names")
    settings_path = folder / AUDIO_SETTINGS
    settings = read_json(settings_path, source) if settings_path.is_file() else {}
    rate = _sample_rate(settings, options, source)
    transforms = [TransformSpec("load_audio", {"sr": rate})]
    if settings.get("filterspec"):
        transforms.append(_butterworth(settings["filterspec"], source))
    if settings.get("normalize_clips", False):
        transforms.append(TransformSpec("normalize_wav", {}))  # Koogu's Audio.normalize
    try:
        graph, layout = tfconvert.saved_model_graph(str(folder), SIGNATURE, None)
        onnx_model = tfconvert.graph_to_onnx(tfconvert.rewrite_power_spectra(graph))
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    if len(layout) != 1 or layout[0] <= 0:
        raise ModelError(f"{source}: signature '{SIGNATURE}' takes {layout}, not raw clips")
    clip = layout[0]
    transforms, lead = whole_recording_filters(transforms, clip, rate)
    return ImportedModel(
        name=options.name,
        description=f"Koogu model {folder.name} (raw audio, spectrogram inside the graph), "
                    "imported by pamlive import-model",
        class_names=class_names(options.classes, own, source),
        segment_s=(clip + 2 * lead) / rate,
        sample_rate=rate,
        transforms=transforms,
        input_shape=[-1, clip],
        onnx_model=onnx_model,
        reference=tfconvert.graph_runner(graph),
        provenance={"format": "koogu SavedModel (with_transformation)", "file": folder.name,
                    "segment_lead_s": lead / rate},
    )


_BTYPES = {"low": 0, "lowpass": 0, "high": 1, "highpass": 1, "band": 2, "bandpass": 2}


def _butterworth(spec: Any, source: Path) -> TransformSpec:
    """Koogu's ``filterspec`` ``[order, [cut-offs], btype]`` (``scipy.signal.butter``) as
    PAMGuard's ``filter_wav`` (Butterworth)."""
    try:
        order, cuts, btype = spec
        cuts = [float(c) for c in (cuts if isinstance(cuts, list | tuple) else [cuts])]
        kind = _BTYPES[str(btype).lower()]
        if len(cuts) != (2 if kind == 2 else 1):
            raise ValueError
    except (TypeError, ValueError, KeyError):
        raise ModelError(f"{source}: Koogu filterspec {spec!r} needs a filter pamlive lacks "
                         "(expected [order, [cut-off(s)], low/high/bandpass])") from None
    return TransformSpec("filter_wav", {"filtertype": kind, "filtermethod": 0,
                                        "order": int(order), "lowcut": cuts[0] if kind else 0.0,
                                        "highcut": cuts[-1] if kind != 1 else 0.0})


def _sample_rate(settings: dict[str, Any], options: ImportOptions, source: Path) -> int:
    own = settings.get("desired_fs")
    if own is not None and options.sample_rate is not None and int(own) != options.sample_rate:
        raise ModelError(f"{source}: --sample-rate {options.sample_rate} contradicts the "
                         f"model's own {AUDIO_SETTINGS} (desired_fs {own})")
    rate = options.sample_rate if own is None else int(own)
    if rate is None:
        raise ModelError(f"{source}: this Koogu model stores no sample rate (no "
                         f"{AUDIO_SETTINGS}); give the rate it was trained at with "
                         "--sample-rate (e.g. --sample-rate 1000)")
    return rate


def whole_recording_filters(transforms: list[TransformSpec], clip: int, rate: int
                            ) -> tuple[list[TransformSpec], int]:
    """Koogu's filtering in a chain cutting ``clip`` samples, and the lead it needs.

    Koogu filters the whole recording forward and backward (``sosfiltfilt`` of its
    ``filterspec``) before cutting clips; PAMGuard runs the same ``filter_wav`` causally
    per segment, which is not what the model was trained on. So each ``filter_wav``
    becomes ``zero_phase`` over a segment extended on both sides by the filters'
    settling time, and a ``trim`` after the last one keeps the clip: the same samples
    as Koogu's to within 1e-7 of the impulse response. Returns the new transforms and
    the lead (samples before the clip; the segment is ``clip + 2 * lead``).
    """
    filters = [i for i, t in enumerate(transforms) if t.name == "filter_wav"]
    if not filters:
        return list(transforms), 0
    pad = max(settling_samples(filter_sos(rate, **transforms[i].params)) for i in filters)
    out = [replace(t, params={**t.params, "zero_phase": True}) if i in filters else t
           for i, t in enumerate(transforms)]
    out.insert(filters[-1] + 1, TransformSpec("trim", {"min": pad, "max": pad + clip}))
    return out, pad
