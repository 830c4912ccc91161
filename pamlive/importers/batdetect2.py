"""Import batdetect2's bat call detector (a PyTorch checkpoint, ``*.pth.tar``) as a pamlive
event-model package: ``model.onnx`` + ``pamlive-model.json`` with an ``"output"`` object of
kind ``events`` (docs/import-models.md, "Bats").

The source is the checkpoint, an installed batdetect2 package folder, or the word
``batdetect2`` (the installed package, found without importing it). The checkpoint's weights
are CC-BY-NC-4.0: pamlive converts the user's own installation and never ships them.

The network is rebuilt from the checkpoint (:mod:`.batdetect2_net`), so neither
batdetect2 nor librosa is needed; PyTorch is (the ``bats`` extra).
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pamlive.dsp.chain import TransformChain, TransformSpec
from pamlive.errors import ModelError, first_line
from pamlive.importers.model import ImportedModel
from pamlive.importers.writer import ensure_writable, write_package

SOURCE_NAME = "batdetect2"  # on the command line: the installed package
CHECKPOINT_SUFFIX = ".pth.tar"
DEFAULT_CHECKPOINT = "Net2DFast_UK_same.pth.tar"
OPSET = 17

# batdetect2 1.3.1 detector/parameters.py, used where a checkpoint's params lack a value
DEFAULTS: dict[str, Any] = {
    "target_samp_rate": 256000,
    "fft_win_length": 512 / 256000.0,
    "fft_overlap": 0.75,
    "max_freq": 120000,
    "min_freq": 10000,
    "resize_factor": 0.5,
    "spec_divide_factor": 32,
    "spec_height": 256,
    "spec_scale": "pcen",
    "denoise_spec_avg": True,
    "max_scale_spec": False,
    "scale_raw_audio": False,
    "detection_threshold": 0.01,
    "nms_kernel_size": 9,
    "nms_top_k_per_sec": 200,
    "ip_height": 128,
    "emb_dim": 0,
}
CHUNK_S = 3.0  # batdetect2's default chunk_size: the window pamlive runs the model on


def is_batdetect2_source(source: str | Path) -> bool:
    """Whether ``source`` names a batdetect2 checkpoint, package folder or the package."""
    s = str(source)
    if s == SOURCE_NAME:
        return True
    p = Path(s)
    if p.name.endswith(CHECKPOINT_SUFFIX):
        return True
    return p.is_dir() and (p / "models").is_dir() and any(
        (p / "models").glob(f"*{CHECKPOINT_SUFFIX}"))


def find_checkpoint(source: str | Path) -> Path:
    """The checkpoint file ``source`` means (see :func:`is_batdetect2_source`)."""
    if str(source) == SOURCE_NAME:
        spec = importlib.util.find_spec(SOURCE_NAME)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError("batdetect2 is not installed in this Python (pip install "
                             "--no-deps batdetect2==1.3.1 provides its checkpoint)")
        source = Path(next(iter(spec.submodule_search_locations)))
    p = Path(source)
    if p.is_dir():
        found = sorted((p / "models").glob(f"*{CHECKPOINT_SUFFIX}"))
        preferred = [f for f in found if f.name == DEFAULT_CHECKPOINT]
        if not found:
            raise ModelError(f"{p}: no batdetect2 checkpoint (models/*{CHECKPOINT_SUFFIX})")
        return (preferred or found)[0]
    if not p.is_file():
        raise ModelError(f"{p}: model not found")
    return p


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ModelError("converting a batdetect2 model needs PyTorch "
                         "(pip install '.[bats]' in a pamlive checkout)") from None
    return torch


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, state_dict)`` of a batdetect2 checkpoint, read without running pickled
    code (``weights_only``); a one-line ModelError for anything else."""
    torch = _torch()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = torch.load(str(path), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or first_line(exc)})") from None
    except Exception as exc:  # torch's unpickler raises KeyError, IndexError... on junk
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({_unreadable(exc)})"
                         ) from None
    if not isinstance(doc, Mapping) or not {"params", "state_dict"} <= set(doc):
        raise ModelError(f"{path}: not a batdetect2 checkpoint (no 'params' and "
                         "'state_dict')")
    params, state = doc["params"], doc["state_dict"]
    if not isinstance(params, Mapping) or "model_name" not in params or \
            not params.get("class_names"):
        raise ModelError(f"{path}: not a batdetect2 checkpoint (params lack model_name or "
                         "class_names)")
    return dict(params), dict(state)


def _unreadable(exc: Exception) -> str:
    """Why torch could not read a checkpoint, in pamlive's words: torch's own message
    spans lines and may advise ``weights_only=False``, which would run the file's code."""
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
        return "it holds Python objects besides weights, and pamlive runs no code from a file"
    return "corrupt, truncated or not a PyTorch file"


def param(params: Mapping[str, Any], key: str) -> Any:
    """A checkpoint parameter, or batdetect2's default for it."""
    return params.get(key, DEFAULTS[key])


def build_network(params: Mapping[str, Any], state: Mapping[str, Any], where: Path) -> Any:
    """The rebuilt network with the checkpoint's weights (one-line error if they misfit)."""
    from pamlive.importers import batdetect2_net

    full = {k: param(params, k) for k in ("ip_height", "resize_factor", "emb_dim")}
    full.update(params)
    try:
        return batdetect2_net.build(full, state)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{where}: cannot rebuild the batdetect2 network "
                         f"({first_line(exc)})") from None


def export_onnx(net: Any, rows: int, where: Path) -> bytes:
    """The network as ONNX: ``spectrogram`` [N,1,rows,W] -> ``detection``, ``size``,
    ``classes``, batch and width dynamic."""
    import io

    torch = _torch()
    example = torch.zeros((1, 1, rows, 512), dtype=torch.float32)
    buf = io.BytesIO()
    dyn = {0: "batch", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (example,), buf, input_names=["spectrogram"],
                              output_names=["detection", "size", "classes"],
                              dynamic_axes={"spectrogram": dyn, "detection": dyn,
                                            "size": dyn, "classes": dyn},
                              opset_version=OPSET, dynamo=False)
        except Exception as exc:  # torch raises several unrelated types
            raise ModelError(f"{where}: cannot export the network to ONNX "
                             f"({first_line(exc)})") from None
    return buf.getvalue()


def spec_rows(params: Mapping[str, Any]) -> int:
    """Rows of batdetect2's cropped spectrogram (220 for its defaults)."""
    win = float(param(params, "fft_win_length"))
    return round(float(param(params, "max_freq")) * win) - \
        round(float(param(params, "min_freq")) * win)


def run_torch(net: Any, spec: np.ndarray) -> dict[str, np.ndarray]:
    """The rebuilt network's outputs for spectrograms ``(n, H, W)``."""
    torch = _torch()
    with torch.no_grad():
        outs = net(torch.from_numpy(np.asarray(spec, np.float32)[:, None]))
    return {k: v.numpy() for k, v in zip(("detection", "size", "classes"), outs, strict=True)}


def run_onnx(onnx_model: bytes, spec: np.ndarray) -> dict[str, np.ndarray]:
    """The ONNX model's outputs for spectrograms ``(n, H, W)`` (one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    outs = session.run(None, {"spectrogram": np.asarray(spec, np.float32)[:, None]})
    return {o.name: np.asarray(v) for o, v in zip(session.get_outputs(), outs, strict=True)}


@dataclass(frozen=True)
class Framing:
    """batdetect2's STFT framing at its model rate, as its own code rounds it."""

    sample_rate: int
    fft: int
    hop: int

    @property
    def overlap(self) -> int:
        return self.fft - self.hop


def framing(params: Mapping[str, Any], where: Path) -> Framing:
    rate = int(param(params, "target_samp_rate"))
    fft = int(float(param(params, "fft_win_length")) * rate)  # int(), as batdetect2
    overlap = int(float(param(params, "fft_overlap")) * fft)
    if rate <= 0 or fft <= 0 or not 0 <= overlap < fft:
        raise ModelError(f"{where}: impossible spectrogram settings in the checkpoint "
                         f"(rate {rate}, fft {fft}, overlap {overlap})")
    return Framing(rate, fft, fft - overlap)


def front_end(params: Mapping[str, Any], where: Path) -> list[TransformSpec]:
    """batdetect2's ``compute_spectrogram`` (before its resize) as pamlive transforms."""
    unsupported = [k for k in ("max_scale_spec", "scale_raw_audio") if param(params, k)]
    scale = param(params, "spec_scale")
    if scale not in ("pcen", "none"):
        unsupported.append(f"spec_scale={scale!r}")
    if unsupported:
        raise ModelError(f"{where}: batdetect2 setting(s) pamlive does not reproduce: "
                         f"{', '.join(unsupported)}")
    fr = framing(params, where)
    chain = [
        TransformSpec("load_audio", {"sr": fr.sample_rate}),
        TransformSpec("batdetect2_pad", {
            "fft": fr.fft, "hop": fr.hop, "resize_factor": float(param(params, "resize_factor")),
            "divide_factor": int(param(params, "spec_divide_factor"))}),
        TransformSpec("batdetect2_spectrogram", {"fft": fr.fft, "hop": fr.hop}),
        TransformSpec("batdetect2_crop", {"fmin": float(param(params, "min_freq")),
                                          "fmax": float(param(params, "max_freq"))}),
    ]
    if scale == "pcen":  # librosa.pcen(S * 2**31, sr=rate / 10), its default hop 512
        chain.append(TransformSpec("pcen", {"sr": fr.sample_rate / 10, "hop": 512,
                                            "scale": float(2**31)}))
    if param(params, "denoise_spec_avg"):
        chain.append(TransformSpec("batdetect2_denoise", {}))
    return chain


def output_spec(params: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """The package's ``"output"`` object: what the event decoder needs (HELPERS/contracts)."""
    fr = framing(params, where)
    return {
        "kind": "events",
        "decoder": "batdetect2",
        "min_freq_hz": _number(param(params, "min_freq")),
        "max_freq_hz": _number(param(params, "max_freq")),
        "frame_step_s": fr.hop / fr.sample_rate,
        "frame_offset_s": fr.overlap / fr.sample_rate,
        "resize_factor": float(param(params, "resize_factor")),
        "nms_kernel_size": int(param(params, "nms_kernel_size")),
        "nms_top_k_per_sec": _number(param(params, "nms_top_k_per_sec")),
        "detection_threshold": float(param(params, "detection_threshold")),
        "width_multiple": int(param(params, "spec_divide_factor")),
    }


def convert(source: str | Path, name: str | None = None) -> ImportedModel:
    """The package for a batdetect2 checkpoint, checked: the front end runs and ONNX
    Runtime gives the three outputs the rebuilt network gives."""
    path = find_checkpoint(source)
    params, state = load_checkpoint(path)
    transforms = front_end(params, path)
    fr = framing(params, path)
    net = build_network(params, state, path)
    onnx_model = export_onnx(net, spec_rows(params), path)
    classes = [str(c) for c in params["class_names"]]
    chain = TransformChain(transforms)
    noise = np.random.default_rng(0).standard_normal((1, round(CHUNK_S * fr.sample_rate)))
    spec = chain.apply((noise * 0.01).astype(np.float32))
    want, got = run_torch(net, spec), run_onnx(onnx_model, spec)
    for key, ref in want.items():
        if got[key].shape != ref.shape or not np.allclose(got[key], ref, rtol=1e-3, atol=1e-3):
            raise ModelError(f"{path}: the ONNX export's {key} output differs from the "
                             "rebuilt network's")
    model_name = str(params["model_name"])
    return ImportedModel(
        name=name or path.name.removesuffix(CHECKPOINT_SUFFIX),
        description=f"batdetect2 {model_name} ({path.name}): bat echolocation call "
                    f"detection and classification, {len(classes)} species",
        class_names=classes,
        segment_s=CHUNK_S,
        sample_rate=fr.sample_rate,
        transforms=transforms,
        input_shape=[-1, 1, *spec.shape[1:]],
        onnx_model=onnx_model,
        reference=lambda x: run_torch(net, x)["detection"],
        freq_range=(float(param(params, "min_freq")), float(param(params, "max_freq"))),
        provenance={"framework": "batdetect2", "checkpoint": path.name,
                    "model_name": model_name, "sha256": _sha256(path),
                    "licence": "the weights are batdetect2's (CC-BY-NC-4.0): converted from "
                               "the user's own installation, not for redistribution"},
        output=output_spec(params, path),
    )


def import_package(source: str | Path, out_dir: str | Path, name: str | None = None,
                   force: bool = False) -> Path:
    """Convert ``source`` and write the package folder ``out_dir``."""
    out = Path(out_dir)
    ensure_writable(out, force)  # before the slow part
    return write_package(convert(source, name), out, force=force)


def _number(value: Any) -> int | float:
    """A whole number as an int (as the checkpoint and the contract write it)."""
    v = float(value)
    return int(v) if v.is_integer() else v


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


__all__ = ["convert", "find_checkpoint", "import_package", "is_batdetect2_source",
           "load_checkpoint"]
