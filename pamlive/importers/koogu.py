"""Koogu models as Koogu itself saves them: a TensorFlow SavedModel folder whose
``with_transformation`` signature takes raw audio clips (Koogu's ``NormalizeAudio`` and
spectral layers run inside the graph), class names in ``assets/classes_list.json``.

Koogu writes the audio settings it was trained with to ``assets/audio_settings.json``
(``desired_fs``, ``clip_length``, ``filterspec``, ``normalize_clips``); a model shipped
without that file (the Koogu right whale model) carries no sample rate, so it must be
given with ``--sample-rate``: pamlive never guesses one. (``.kgu`` archives, Koogu
models packaged for PAMGuard, are read by :mod:`pamlive.importers.pamguard`.)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pamlive.dsp.chain import TransformSpec
from pamlive.dsp.pdtf import PamguardMetadata
from pamlive.dsp.wave import filter_sos, settling_samples
from pamlive.errors import ModelError
from pamlive.importers import tfconvert
from pamlive.importers.archive import read_json, require_file
from pamlive.importers.model import ImportedModel, ImportOptions, class_names

SIGNATURE = "with_transformation"
CLASSES = "assets/classes_list.json"
AUDIO_SETTINGS = "assets/audio_settings.json"


def is_koogu_folder(folder: Path) -> bool:
    return (folder / "saved_model.pb").is_file() and (folder / CLASSES).is_file()


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
        raise ModelError(f"{source}: Koogu filterspec {settings['filterspec']} (a zero-phase "
                         "filter over the whole recording) needs a transform pamlive lacks")
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
    return ImportedModel(
        name=options.name,
        description=f"Koogu model {folder.name} (raw audio, spectrogram inside the graph), "
                    "imported by pamlive import-model",
        class_names=class_names(options.classes, own, source),
        segment_s=clip / rate,
        sample_rate=rate,
        transforms=transforms,
        input_shape=[-1, clip],
        onnx_model=onnx_model,
        reference=tfconvert.graph_runner(graph),
        provenance={"format": "koogu SavedModel (with_transformation)", "file": folder.name},
    )


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


def whole_recording_filters(meta: PamguardMetadata, rate: int) -> tuple[PamguardMetadata, int]:
    """Koogu's filtering in a ``.kgu``'s PAMGuard chain, and the lead it needs.

    Koogu filters the whole recording forward and backward (``sosfiltfilt`` of its
    ``filterspec``) before cutting clips; PAMGuard runs the same ``filter_wav`` causally
    per segment, which is not what the model was trained on. So each ``filter_wav``
    becomes ``zero_phase`` over a segment extended on both sides by the filters'
    settling time, and a ``trim`` after the last one keeps the clip: the same samples
    as Koogu's to within 1e-7 of the impulse response. Returns the new metadata and the
    lead (samples before the clip).
    """
    filters = [i for i, t in enumerate(meta.transforms) if t.name == "filter_wav"]
    if not filters:
        return meta, 0
    pad = max(settling_samples(filter_sos(rate, **meta.transforms[i].params))
              for i in filters)
    clip = round(meta.segment_ms / 1000 * rate)
    transforms = [replace(t, params={**t.params, "zero_phase": True}) if i in filters else t
                  for i, t in enumerate(meta.transforms)]
    transforms.insert(filters[-1] + 1, TransformSpec("trim", {"min": pad, "max": pad + clip}))
    return replace(meta, transforms=transforms,
                   segment_ms=(clip + 2 * pad) / rate * 1000), pad
