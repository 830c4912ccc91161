"""Models described by PAMGuard metadata (``.pdtf`` JSON): PAMGuard generic models (a
TensorFlow SavedModel folder or a TorchScript file beside a ``.pdtf``) and Koogu ``.kgu``
archives (SavedModel + ``audio_repr_pg.json``, the same format).

The transforms, class names and segment length come straight from the metadata, so the
package runs the chain PAMGuard runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.pdtf import PamguardMetadata, read_pdtf
from pamlive.errors import ModelError, PamliveError, first_line
from pamlive.importers import koogu, tfconvert
from pamlive.importers.formats import TORCH_SUFFIXES, find_pdtf, require_file, unpack
from pamlive.importers.model import ImportedModel, ImportOptions, class_names
from pamlive.importers.writer import run_onnx
from pamlive.inference.package import pamguard_transforms

# Koogu's SavedModel signature that takes the raw waveform, as PAMGuard feeds it
KOOGU_SIGNATURE = "with_transformation"


def import_koogu(source: Path, work: Path, options: ImportOptions) -> ImportedModel:
    root = unpack(source, work)
    meta = _metadata(require_file(root, "audio_repr_pg.json", source, "metadata file"), source)
    require_file(root, "saved_model.pb", source, "SavedModel")
    rate = _rate(meta, source)
    clip = round(meta.segment_ms / 1000 * rate)
    transforms, lead = koogu.whole_recording_filters(meta.transforms, clip, rate)
    meta = replace(meta, transforms=transforms, segment_ms=(clip + 2 * lead) / rate * 1000)
    model = _tf_model(source, root, KOOGU_SIGNATURE, meta, options, "koogu .kgu (SavedModel)")
    model.provenance["segment_lead_s"] = lead / model.sample_rate
    return model


def import_tf_generic(source: Path, work: Path, options: ImportOptions,
                      pdtf: Path | None = None) -> ImportedModel:
    folder = source if source.is_dir() else source.parent
    meta = _metadata(pdtf or find_pdtf(folder), source)
    return _tf_model(source, folder, None, meta, options,
                     "PAMGuard generic model (TensorFlow SavedModel)")


def import_torch_generic(source: Path, work: Path, options: ImportOptions,
                         pdtf: Path | None = None) -> ImportedModel:
    meta = _metadata(pdtf or find_pdtf(source), source)
    sr, segment_s, shape = _chain_facts(meta, source)
    onnx_model, reference = _torchscript_to_onnx(source, work, shape)
    return _imported(source, meta, options, sr, segment_s, shape, onnx_model, reference,
                     "PAMGuard generic model (TorchScript)")


def import_onnx_generic(source: Path, work: Path, options: ImportOptions,
                        pdtf: Path | None = None) -> ImportedModel:
    """An ONNX model beside its ``.pdtf``: nothing to convert (the reference is ONNX
    Runtime itself); the chain must still produce the model's input."""
    meta = _metadata(pdtf or find_pdtf(source), source)
    sr, segment_s, shape = _chain_facts(meta, source)
    onnx_model = source.read_bytes()
    return _imported(source, meta, options, sr, segment_s, shape, onnx_model,
                     lambda x: run_onnx(onnx_model, x, str(source)),
                     "PAMGuard generic model (ONNX)")


def import_zip(source: Path, work: Path, options: ImportOptions) -> ImportedModel:
    """PAMGuard's packaging: a zip holding one model (SavedModel folder, TorchScript or
    ONNX file) and its ``.pdtf``, anywhere inside; imported as it is."""
    root = unpack(source, work)
    pdtfs = sorted(root.rglob("*.pdtf"))
    if len(pdtfs) != 1:
        raise ModelError(f"{source}: a PAMGuard model zip must hold exactly one .pdtf "
                         f"(found {len(pdtfs)})")
    models = sorted([p.parent for p in root.rglob("saved_model.pb")]
                    + [p for p in root.rglob("*") if p.is_file()
                       and p.suffix.lower() in (*TORCH_SUFFIXES, ".onnx")])
    if len(models) != 1:
        raise ModelError(f"{source}: a PAMGuard model zip must hold exactly one model "
                         "(a SavedModel folder, a TorchScript .pt or an .onnx file), found "
                         f"{[str(m.relative_to(root)) for m in models] or 'none'}")
    model = models[0]
    importer = (import_tf_generic if model.is_dir() else
                import_onnx_generic if model.suffix.lower() == ".onnx" else import_torch_generic)
    try:
        imported = importer(model, work / "convert", options, pdtfs[0])
    except ModelError as exc:  # name the zip, not the folder it was unpacked into
        raise ModelError(str(exc).replace(str(model), f"{source}:{model.relative_to(root)}")
                         ) from None
    imported.provenance["file"] = source.name
    return imported


def _tf_model(source: Path, saved_model: Path, signature: str | None, meta: PamguardMetadata,
              options: ImportOptions, fmt: str) -> ImportedModel:
    sr, segment_s, shape = _chain_facts(meta, source)
    try:
        original, shape = tfconvert.saved_model_graph(str(saved_model), signature, shape)
        onnx_model = tfconvert.graph_to_onnx(tfconvert.rewrite_power_spectra(original))
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    # the reference is the graph as saved, before the power-spectrum rewrite
    return _imported(source, meta, options, sr, segment_s, shape, onnx_model,
                     tfconvert.graph_runner(original), fmt)


def _imported(source: Path, meta: PamguardMetadata, options: ImportOptions, sr: int,
              segment_s: float, shape: list[int], onnx_model: bytes,
              reference: Callable[[np.ndarray], np.ndarray], fmt: str) -> ImportedModel:
    own = list(meta.class_names) or list(options.classes or [])
    if not own:
        raise ModelError(f"{source}: the metadata names no classes (class_info.name_class); "
                         "give them with --classes")
    return ImportedModel(
        name=options.name,
        description=meta.description or f"{fmt} {source.name}",
        class_names=class_names(options.classes, own, source),
        segment_s=segment_s,
        sample_rate=sr,
        transforms=meta.transforms,
        input_shape=[-1, *shape],
        onnx_model=onnx_model,
        reference=reference,
        provenance={"format": fmt, "file": source.name},
    )


def _metadata(path: Path, source: Path) -> PamguardMetadata:
    try:
        meta = read_pdtf(path)
    except ModelError as exc:
        raise ModelError(f"{source}: {str(exc).replace(str(path), path.name)}") from None
    # the model was trained on PAMGuard's Java transforms: keep its numerics
    return replace(meta, transforms=pamguard_transforms(meta.transforms))


def _chain_facts(meta: PamguardMetadata, source: Path) -> tuple[int, float, list[int]]:
    """Sample rate, segment length and the shape the chain hands the model."""
    sr = _rate(meta, source)
    segment_s = meta.segment_ms / 1000.0
    try:
        shape = list(TransformChain(meta.transforms).output_shape(round(segment_s * sr)))
    except PamliveError as exc:
        raise ModelError(f"{source}: {exc}") from None
    declared = [int(d) for d in (meta.input_shape or [])[1:]]
    if declared and all(d > 0 for d in declared) and np.prod(declared) == np.prod(shape):
        shape = declared  # the model's own layout, e.g. a trailing channel axis
    return sr, segment_s, shape


def _rate(meta: PamguardMetadata, source: Path) -> int:
    loads = [t for t in meta.transforms if t.name.startswith("load_audio")]
    if not loads or "sr" not in loads[0].params:
        raise ModelError(f"{source}: the metadata has no load_audio transform giving the rate")
    return int(loads[0].params["sr"])


def _torchscript_to_onnx(source: Path, work: Path, shape: list[int]
                         ) -> tuple[bytes, Callable[[np.ndarray], np.ndarray]]:
    try:
        import torch
    except ImportError:
        raise ModelError(f"{source}: converting a TorchScript model needs PyTorch "
                         "(pip install 'pamlive[convert]')") from None
    torch.set_num_threads(1)
    out_path = work / "model.onnx"
    with warnings.catch_warnings():  # TorchScript and its ONNX exporter are deprecated
        warnings.simplefilter("ignore")
        try:
            module = torch.jit.load(str(source), map_location="cpu").eval()
        except Exception as exc:  # RuntimeError for anything that is not TorchScript
            raise ModelError(f"{source}: not a TorchScript model ({first_line(exc)})"
                             ) from None
        example = torch.zeros((1, *shape), dtype=torch.float32)
        try:
            # the TorchScript exporter: the dynamo one cannot take a ScriptModule
            torch.onnx.export(module, (example,), str(out_path), input_names=["input"],
                              output_names=["scores"], dynamic_axes={"input": {0: "batch"},
                                                                     "scores": {0: "batch"}},
                              opset_version=tfconvert.OPSET, dynamo=False)
        except Exception as exc:  # torch raises UnsupportedOperatorError, RuntimeError, ...
            raise ModelError(f"{source}: unsupported layer or op for ONNX "
                             f"({first_line(exc)})") from None

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.asarray(x, np.float32))).numpy()

    return out_path.read_bytes(), reference
