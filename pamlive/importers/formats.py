"""Find out what kind of model a source is, and unpack the zip-based formats safely.

Ketos (``.kt``, ``.ktpb``) and Koogu (``.kgu``) models are zip archives; a corrupt
archive, a member outside the archive root or a missing metadata file is a one-line
:class:`~pamlive.errors.ModelError`, raised before anything is written.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from pamlive.errors import ModelError

KETOS_KT = "ketos-kt"
KETOS_KTPB = "ketos-ktpb"
KOOGU = "koogu"
KOOGU_SAVEDMODEL = "koogu-savedmodel"
PAMGUARD_TF = "pamguard-tf"
PAMGUARD_TORCH = "pamguard-torch"
PAMGUARD_ONNX = "pamguard-onnx"
PAMGUARD_ZIP = "pamguard-zip"

TORCH_SUFFIXES = (".pt", ".pth", ".torchscript")
_BY_SUFFIX = {".kt": KETOS_KT, ".ktpb": KETOS_KTPB, ".kgu": KOOGU, ".zip": PAMGUARD_ZIP,
              ".onnx": PAMGUARD_ONNX}


def detect_kind(source: Path) -> str:
    """The importer a source needs, judged from its name and layout."""
    if not source.exists():
        raise ModelError(f"{source}: model not found")
    if source.name == "saved_model.pb":
        source = source.parent
    if source.is_dir():
        if (source / "saved_model.pb").is_file():
            # PAMGuard metadata wins; else Koogu's own layout (assets/classes_list.json)
            has_pdtf = any(source.glob("*.pdtf"))
            koogu = (source / "assets" / "classes_list.json").is_file()
            return KOOGU_SAVEDMODEL if koogu and not has_pdtf else PAMGUARD_TF
        raise ModelError(f"{source}: a model folder must hold a TensorFlow saved_model.pb "
                         "(PAMGuard generic model) beside its .pdtf metadata")
    suffix = source.suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if suffix in TORCH_SUFFIXES:
        return PAMGUARD_TORCH
    if suffix == ".pk":
        raise ModelError(f"{source}: AnimalSpot models (.pk) are not supported yet: converting "
                         "one needs AnimalSpot's network code and a real model to test against")
    raise ModelError(f"{source}: unknown model type '{suffix or source.name}' (expected .kt, "
                     ".ktpb, .kgu, a PAMGuard .zip, a TorchScript .pt or .onnx beside its "
                     ".pdtf, or a SavedModel folder)")


def unpack(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` after checking every member; returns ``dest``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ModelError(f"{archive}: corrupt archive (member {bad} fails its CRC check)")
            for name in zf.namelist():
                parts = Path(name).parts
                if Path(name).is_absolute() or ".." in parts:
                    raise ModelError(f"{archive}: archive member {name!r} points outside it")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{archive}: corrupt or not a zip archive ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ModelError(f"{archive}: cannot read the archive ({exc})") from None
    return dest


def require_file(root: Path, relative: str, archive: Path, what: str) -> Path:
    """``root/relative`` or a one-line error naming the missing metadata or weights file."""
    path = root / relative
    if not path.is_file():
        raise ModelError(f"{archive}: missing {what} '{relative}'")
    return path


def find_pdtf(model: Path) -> Path:
    """The PAMGuard metadata of a generic model: a ``.pdtf`` in or beside it."""
    folder = model if model.is_dir() else model.parent
    same_stem = model.with_suffix(".pdtf")
    if not model.is_dir() and same_stem.is_file():
        return same_stem
    candidates = sorted(folder.glob("*.pdtf"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(f"{model}: missing metadata file: no PAMGuard .pdtf in {folder}")
    raise ModelError(f"{model}: several .pdtf files in {folder}; name the model file so its "
                     ".pdtf shares its stem")


def read_json(path: Path, source: Path) -> Any:
    """A metadata file's JSON, or a one-line error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{source}: {path.name} is not readable JSON ({exc})") from None
