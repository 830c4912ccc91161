"""Check an imported model end to end, then write its package atomically.

Checks, each a one-line error: every transform exists in pamlive, the chain is valid
and produces what the ONNX model takes, and ONNX Runtime runs the model to one score
per class. The package is built in a hidden folder beside the target, re-read with
pamlive's own loader, and only then renamed into place: never a half-written package.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.transforms import REGISTRY
from pamlive.errors import ModelError, PamliveError, first_line
from pamlive.importers.model import ImportedModel
from pamlive.inference.package import METADATA_NAME, SCHEMA, load_model_package

ONNX_NAME = "model.onnx"


def check(model: ImportedModel, where: str) -> None:
    """Raise a :class:`ModelError` naming the first thing that would not run."""
    for spec in model.transforms:
        if spec.name not in REGISTRY:
            raise ModelError(f"{where}: needs transform '{spec.name}', which pamlive lacks")
    try:
        chain = TransformChain(model.transforms)
        samples = round(model.segment_s * model.sample_rate)
        noise = np.random.default_rng(0).standard_normal((1, samples)).astype(np.float32) * 0.1
        features = chain.apply(noise)
    except PamliveError as exc:
        raise ModelError(f"{where}: translated transform chain is invalid: {exc}") from None
    want = list(model.input_shape[1:])
    if int(np.prod(features.shape[1:])) != int(np.prod(want)):
        raise ModelError(f"{where}: the transform chain gives {list(features.shape[1:])}, "
                         f"the model takes {want}")
    scores = run_onnx(model.onnx_model, features.reshape((1, *want)), where)
    if scores.shape != (1, len(model.class_names)) or not np.all(np.isfinite(scores)):
        raise ModelError(f"{where}: the ONNX model gives scores of shape {list(scores.shape)} "
                         f"for {len(model.class_names)} classes")


def run_onnx(onnx_model: bytes, x: np.ndarray, where: str = "model") -> np.ndarray:
    """Scores of the converted model on ``x`` (one ONNX Runtime session, one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.asarray(session.run(None, {name: np.asarray(x, np.float32)})[0])
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise ModelError(f"{where}: ONNX Runtime cannot run the converted model "
                         f"({first_line(exc)})") from None


def metadata(model: ImportedModel) -> dict:
    return {
        "schema": SCHEMA,
        "name": model.name,
        "version": model.version,
        "description": model.description,
        "class_names": model.class_names,
        "thresholds": model.thresholds,
        "binary": model.binary,
        "segment_s": model.segment_s,
        "sample_rate": model.sample_rate,
        "input_shape": model.input_shape,
        "output_activation": model.output_activation,
        "freq_range": list(model.freq_range) if model.freq_range else None,
        "transforms": [s.to_json() for s in model.transforms],
        "imported_from": model.provenance,
        "output": model.output,
    }


def write_package(model: ImportedModel, target: Path, force: bool = False) -> Path:
    """Write ``model.onnx`` + ``pamlive-model.json`` to ``target`` in one rename."""
    target = Path(target)
    ensure_writable(target, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        (staging / ONNX_NAME).write_bytes(model.onnx_model)
        doc = {k: v for k, v in metadata(model).items() if v is not None}
        (staging / METADATA_NAME).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        load_model_package(staging)  # pamlive's own loader must accept it
        if target.exists():
            old = target.with_name(f".{target.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):  # e.g. disk full
            raise _write_error(target, exc) from None
        raise
    return target


def _write_error(target: Path, exc: OSError) -> ModelError:
    return ModelError(f"{target}: cannot write the package ({exc.strerror or exc})")


def ensure_writable(target: Path, force: bool) -> None:
    """Refuse to overwrite anything but an existing package (and that only with force)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ModelError(f"{target}: exists and is not a package folder")
    if not force:
        raise ModelError(f"{target}: already exists (use --force to replace it)")
    if any(target.iterdir()) and not (target / METADATA_NAME).is_file():
        raise ModelError(f"{target}: exists and is not a pamlive model package; "
                         "refusing to replace it")
