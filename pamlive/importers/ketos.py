"""Ketos models: ``.ktpb`` (SavedModel + audio_repr.json + recipe.json) and ``.kt``
(TF2 checkpoint + recipe.json + audio_repr.json, the ResNet rebuilt from the recipe).

Ketos models carry no class names: they come from ``--classes``, else they are the
output indices (``class_0``, ``class_1``, ...; never the file name). Ketos trains class 0
as background, so by PAMGuard's convention only the others detect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pamlive.errors import ModelError
from pamlive.importers import tfconvert
from pamlive.importers.formats import read_json, require_file, unpack
from pamlive.importers.ketos_repr import KetosRepresentation, translate
from pamlive.importers.ketos_resnet import CheckpointWeights, resnet_function
from pamlive.importers.model import ImportedModel, ImportOptions, class_names


def import_ktpb(source: Path, work: Path, options: ImportOptions) -> ImportedModel:
    root = unpack(source, work)
    rep = _representation(root, source)
    require_file(root, "model/saved_model.pb", source, "SavedModel")
    try:
        graph, _ = tfconvert.saved_model_graph(str(root / "model"), None, [*rep.shape, 1])
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    return _imported(source, options, rep, graph, "ketos .ktpb (SavedModel)")


def import_kt(source: Path, work: Path, options: ImportOptions) -> ImportedModel:
    root = unpack(source, work)
    rep = _representation(root, source)
    recipe = read_json(require_file(root, "recipe.json", source, "metadata file"), source)
    prefix = _checkpoint_prefix(root, source)
    forward = resnet_function(recipe, CheckpointWeights(str(prefix), str(source)), str(source))
    tf = tfconvert.tensorflow()
    spec = tf.TensorSpec([None, *rep.shape, 1], tf.float32)
    concrete = tf.function(forward).get_concrete_function(spec)
    graph = tfconvert.freeze(concrete, [*rep.shape, 1])
    return _imported(source, options, rep, graph, "ketos .kt (ResNet rebuilt from recipe)")


def _imported(source: Path, options: ImportOptions, rep: KetosRepresentation, graph: Any,
              fmt: str) -> ImportedModel:
    onnx_model = _convert(graph, source)
    n_classes = _n_classes(onnx_model, source)
    names = class_names(options.classes, [f"class_{i}" for i in range(n_classes)], source)
    return ImportedModel(
        name=options.name,
        description=f"Ketos model {source.name}, imported by pamlive import-model",
        class_names=names,
        segment_s=rep.segment_s,
        sample_rate=rep.rate,
        transforms=rep.transforms,
        input_shape=[-1, *rep.shape, 1],
        onnx_model=onnx_model,
        reference=tfconvert.graph_runner(graph),
        freq_range=rep.freq_range,
        provenance={"format": fmt, "file": source.name,
                    "ketos_duration_s": rep.duration_s,
                    "segment_lead_s": rep.lead_samples / rep.rate},
    )


def _convert(graph: Any, source: Path) -> bytes:
    try:
        return tfconvert.graph_to_onnx(graph)
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None


def _n_classes(onnx_model: bytes, source: Path) -> int:
    import onnx

    dims = onnx.load_from_string(onnx_model).graph.output[0].type.tensor_type.shape.dim
    if not dims or not dims[-1].dim_value:
        raise ModelError(f"{source}: cannot tell the number of classes from the model output")
    return int(dims[-1].dim_value)


def _representation(root: Path, source: Path) -> KetosRepresentation:
    doc = read_json(require_file(root, "audio_repr.json", source, "metadata file"), source)
    return translate(doc, f"{source}: audio_repr.json")



def _checkpoint_prefix(root: Path, source: Path) -> Path:
    """The checkpoint the ``checkpoints/checkpoint`` file names, else the only one."""
    folder = root / "checkpoints"
    index = folder / "checkpoint"
    if index.is_file():
        for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model_checkpoint_path":
                prefix = folder / value.strip().strip('"')
                if prefix.with_suffix(prefix.suffix + ".index").is_file():
                    return prefix
    found = sorted(folder.glob("*.index")) if folder.is_dir() else []
    if len(found) != 1:
        raise ModelError(f"{source}: missing TF2 checkpoint (checkpoints/*.index)")
    return found[0].with_suffix("")
