"""Model packages (docs/contracts.md §4): ``model.onnx`` + ``pamlive-model.json``, or a PAMGuard
``.pdtf`` beside an ONNX file, as a directory or a ``.zip`` of one.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pamlive.checks import Range, check_value
from pamlive.config import BUILTIN_MODEL
from pamlive.dsp.chain import TransformChain, TransformSpec
from pamlive.dsp.pdtf import read_pdtf
from pamlive.errors import ConfigError, ModelError, PamliveError
from pamlive.inference.event_spec import DECODERS, EventSpec
from pamlive.inference.locate import locate_package

METADATA_NAME = "pamlive-model.json"
SCHEMA = "pamlive.model/1"
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "models"
ACTIVATIONS = ("none", "softmax", "sigmoid")


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    onnx_path: Path
    name: str
    version: str
    class_names: list[str]
    thresholds: dict[str, float]
    binary: dict[str, bool]
    segment_s: float
    sample_rate: int
    transforms: list[TransformSpec]
    description: str = ""
    input_shape: list[int] | None = None
    output_activation: str = "none"
    freq_range: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    events: EventSpec | None = None  # "output": {"kind": "events"}: calls, not window scores

    @property
    def segment_samples(self) -> int:
        return round(self.segment_s * self.sample_rate)

    def chain(self) -> TransformChain:
        try:
            chain = TransformChain(self.transforms)
        except PamliveError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        if chain.sample_rate != self.sample_rate:
            raise ModelError(f"{self.path}: load_audio rate {chain.sample_rate} Hz differs from "
                             f"sample_rate {self.sample_rate} Hz")
        return chain


def load_model_package(path: str | Path) -> ModelPackage:
    """Load a package directory, a ``.zip`` of one (a relative path: here, else in the
    user's model folder, :mod:`pamlive.inference.locate`), or ``builtin:NAME``."""
    if str(path).startswith("builtin:"):
        name = str(path).split(":", 1)[1]
        target = BUILTIN_DIR / name
        if not (target / METADATA_NAME).is_file():
            raise ModelError(f"no built-in model '{name}' (have: {', '.join(builtin_names())})")
        return _load_dir(target)
    p = locate_package(path)
    if p.is_file() and p.suffix.lower() == ".zip":
        return _load_zip(p)
    if p.is_dir():
        return _load_dir(p)
    raise ModelError(f"{p}: a model package is a directory or a .zip of one")


def builtin_names() -> list[str]:
    return sorted(d.name for d in BUILTIN_DIR.iterdir() if (d / METADATA_NAME).is_file())


# A zip is unpacked into pamlive-model-<pid>-* in the temp folder and removed at exit. A
# process that could not clean up (killed, or re-executed in place: exec runs no exit
# handlers) is tidied by the next load: folders of dead PIDs, or of our PID but not ours.
_EXTRACT_PREFIX = "pamlive-model-"
_extracted: set[Path] = set()


def _extract_dir() -> Path:
    _remove_stale_extracts()
    d = Path(tempfile.mkdtemp(prefix=f"{_EXTRACT_PREFIX}{os.getpid()}-"))
    _extracted.add(d)
    return d


def _discard(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)
    _extracted.discard(d)


@atexit.register
def _remove_extracts() -> None:
    for d in list(_extracted):
        _discard(d)


def _remove_stale_extracts() -> None:
    for d in Path(tempfile.gettempdir()).glob(f"{_EXTRACT_PREFIX}*-*"):
        pid = d.name[len(_EXTRACT_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or d in _extracted:
            continue
        if int(pid) == os.getpid() or not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _load_zip(p: Path) -> ModelPackage:
    extract_to = None
    try:
        with zipfile.ZipFile(p) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ModelError(f"{p}: corrupt zip (member {bad} fails its CRC)")
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if any(Path(n).is_absolute() or ".." in Path(n).parts for n in names):
                raise ModelError(f"{p}: zip holds paths outside the package")
            extract_to = _extract_dir()
            zf.extractall(extract_to)
        tops = list(extract_to.iterdir())
        inner = tops[0] if len(tops) == 1 and tops[0].is_dir() else extract_to
        return _load_dir(inner, shown_as=p)
    except zipfile.BadZipFile as exc:
        if extract_to is not None:
            _discard(extract_to)
        raise ModelError(f"{p}: not a valid zip file ({exc})") from None
    except BaseException:
        if extract_to is not None:
            _discard(extract_to)
        raise


def _load_dir(d: Path, shown_as: Path | None = None) -> ModelPackage:
    shown = shown_as or d
    meta_path = d / METADATA_NAME
    onnx_files = sorted(d.glob("*.onnx"))
    if meta_path.is_file():
        onnx_path = d / "model.onnx"
        if not onnx_path.is_file():
            raise ModelError(f"{shown}: model.onnx is missing")
        return _from_metadata(meta_path, onnx_path, shown)
    pdtfs = sorted(d.glob("*.pdtf"))
    if pdtfs and len(onnx_files) == 1:
        return _from_pdtf(pdtfs[0], onnx_files[0], shown)
    raise ModelError(
        f"{shown}: no {METADATA_NAME}, and not one .onnx beside a PAMGuard .pdtf"
    )


def _from_metadata(meta_path: Path, onnx_path: Path, shown: Path) -> ModelPackage:
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{meta_path}: unreadable model metadata ({exc})") from None
    try:
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"schema must be {SCHEMA!r}, got {doc.get('schema')!r}")
        classes = [str(c) for c in doc["class_names"]]
        thresholds = {str(k): _number(f"thresholds.{k}", _THRESHOLD, v)
                      for k, v in doc["thresholds"].items()}
        binary = {str(k): bool(v) for k, v in doc["binary"].items()}
        for table, name in ((thresholds, "thresholds"), (binary, "binary")):
            if set(table) != set(classes):
                raise ValueError(f"{name} must name every class in class_names")
        activation = doc.get("output_activation", "none")
        if activation not in ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {ACTIVATIONS}")
        fr = doc.get("freq_range")
        if fr is not None:
            fr = _number("freq_range", tuple[float, float], fr)
        segment_s, sample_rate = _window(doc["segment_s"], doc["sample_rate"])
        return ModelPackage(
            path=shown,
            onnx_path=onnx_path,
            name=str(doc["name"]),
            version=str(doc["version"]),
            description=str(doc.get("description", "")),
            class_names=classes,
            thresholds=thresholds,
            binary=binary,
            segment_s=segment_s,
            sample_rate=sample_rate,
            transforms=[TransformSpec(t["name"], dict(t.get("params", {})))
                        for t in doc["transforms"]],
            input_shape=doc.get("input_shape"),
            output_activation=activation,
            freq_range=fr,
            extra={k: v for k, v in doc.items() if k not in _KNOWN_KEYS},
            events=_output(doc.get("output"), sample_rate),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        missing = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ModelError(f"{meta_path}: invalid model metadata: {missing}") from None


_THRESHOLD = Annotated[float, Range(ge=0, le=1)]
_SEGMENT_S = Annotated[float, Range(gt=0, le=600, unit=" s")]
_SAMPLE_RATE = Annotated[float, Range(ge=1, le=384000, unit=" Hz")]
MAX_SEGMENT_SAMPLES = 1 << 24  # 64 MB of float32 per channel and window


def _number(name: str, tp: Any, value: Any) -> Any:
    """``value`` checked by the config checker (a JSON number, finite, in range)."""
    try:
        return check_value(tp, value, name)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _window(segment_s: Any, sample_rate: Any) -> tuple[float, int]:
    """The window length and rate, refused before any buffer is sized by them."""
    seconds = _number("segment_s", _SEGMENT_S, segment_s)
    rate = _number("sample_rate", _SAMPLE_RATE, sample_rate)
    if rate != int(rate):
        raise ValueError(f"sample_rate must be a whole number of Hz, got {rate:g}")
    samples = round(seconds * rate)
    if not 1 <= samples <= MAX_SEGMENT_SAMPLES:
        raise ValueError(f"segment_s x sample_rate = {samples} samples per window, must be "
                         f"1..{MAX_SEGMENT_SAMPLES}")
    return seconds, int(rate)


_KNOWN_KEYS = {"schema", "name", "version", "description", "class_names", "thresholds", "binary",
               "segment_s", "sample_rate", "transforms", "input_shape", "output_activation",
               "freq_range", "output"}

_HZ = Annotated[float, Range(ge=0, le=1e6, unit=" Hz")]
_STEP_S = Annotated[float, Range(gt=0, le=10, unit=" s")]
_OFFSET_S = Annotated[float, Range(ge=0, le=10, unit=" s")]
_RESIZE = Annotated[float, Range(gt=0, le=1)]
_KERNEL = Annotated[int, Range(ge=1, le=99)]
_TOP_K = Annotated[float, Range(gt=0, le=1e6)]
_MULTIPLE = Annotated[int, Range(ge=1, le=4096)]
_EVENT_KEYS: dict[str, Any] = {
    "min_freq_hz": _HZ, "max_freq_hz": _HZ, "frame_step_s": _STEP_S,
    "frame_offset_s": _OFFSET_S, "resize_factor": _RESIZE, "nms_kernel_size": _KERNEL,
    "nms_top_k_per_sec": _TOP_K, "detection_threshold": _THRESHOLD,
    "width_multiple": _MULTIPLE,
}


def _output(doc: Any, sample_rate: int) -> EventSpec | None:
    """The ``"output"`` object: absent or ``{"kind": "scores"}`` is window scores; ``{"kind":
    "events", "decoder": "batdetect2", ...}`` an event model, every number checked."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ValueError("output must be an object")
    kind = doc.get("kind")
    if kind == "scores" and set(doc) == {"kind"}:
        return None
    if kind != "events":
        raise ValueError(f"output.kind must be 'scores' or 'events', got {kind!r}")
    if doc.get("decoder") not in DECODERS:
        raise ValueError(f"output.decoder must be one of {DECODERS}, got {doc.get('decoder')!r}")
    unknown = set(doc) - {"kind", "decoder", *_EVENT_KEYS}
    if unknown:
        raise ValueError(f"output: unknown key(s) {', '.join(sorted(unknown))}")
    missing = [k for k in _EVENT_KEYS if k not in doc]
    if missing:
        raise ValueError(f"output: missing key(s) {', '.join(missing)}")
    values = {k: _number(f"output.{k}", tp, doc[k]) for k, tp in _EVENT_KEYS.items()}
    if values["min_freq_hz"] >= values["max_freq_hz"]:
        raise ValueError("output: min_freq_hz must be below max_freq_hz")
    if values["nms_kernel_size"] % 2 == 0:
        raise ValueError(f"output.nms_kernel_size must be odd, got {values['nms_kernel_size']}")
    return EventSpec(decoder=str(doc["decoder"]), sample_rate=sample_rate, **values)


# transforms whose pamlive default differs from PAMGuard's Java (docs/notes-dsp-parity.md)
PAMGUARD_EXACT = {"spectrogram", "freq_compression", "norm_row_sum"}


def pamguard_transforms(specs: list[TransformSpec]) -> list[TransformSpec]:
    """The chain of a PAMGuard-trained model, with PAMGuard's own numerics switched on."""
    return [TransformSpec(t.name, {**t.params, "pamguard_exact": True})
            if t.name in PAMGUARD_EXACT else t for t in specs]


def _from_pdtf(pdtf: Path, onnx_path: Path, shown: Path) -> ModelPackage:
    """A PAMGuard generic-model folder used as-is: the .pdtf says everything but thresholds.

    A model trained in PAMGuard saw PAMGuard's own transform numerics, so those are used.
    """
    meta = read_pdtf(pdtf)
    if not meta.class_names:
        raise ModelError(f"{pdtf}: no class names in class_info")
    loads = [t for t in meta.transforms if t.name.startswith("load_audio")]
    if not loads or "sr" not in loads[0].params:
        raise ModelError(f"{pdtf}: no load_audio transform giving the sample rate")
    fr = [t for t in meta.transforms if t.name in ("freq_compression", "freq_trim")]
    try:
        segment_s, sample_rate = _window(meta.segment_ms / 1000.0, loads[0].params["sr"])
    except ValueError as exc:
        raise ModelError(f"{pdtf}: {exc}") from None
    positive = {c: i > 0 for i, c in enumerate(meta.class_names)}
    transforms = pamguard_transforms(meta.transforms)
    return ModelPackage(
        path=shown,
        onnx_path=onnx_path,
        name=onnx_path.stem,
        version="pdtf",
        description=meta.description,
        class_names=meta.class_names,
        thresholds={c: (0.5 if pos else 1.0) for c, pos in positive.items()},
        binary=positive,
        segment_s=segment_s,
        sample_rate=sample_rate,
        transforms=transforms,
        input_shape=meta.input_shape,
        freq_range=(float(fr[0].params["fmin"]), float(fr[0].params["fmax"])) if fr else None,
    )


__all__ = ["BUILTIN_MODEL", "ModelPackage", "builtin_names", "load_model_package"]
