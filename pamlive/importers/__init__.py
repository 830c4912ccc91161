"""``pamlive import-model``: bring your own model (PAMGuard generic, Ketos, Koogu) as a
pamlive model package (ONNX + ``pamlive-model.json``, docs/contracts.md §4).

Converting needs the optional ``convert`` extra (TensorFlow CPU, tf2onnx, PyTorch for
TorchScript); running the package needs only onnxruntime. See ``docs/import-models.md``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pamlive.errors import ModelError, PamliveError
from pamlive.importers import batdetect2, formats
from pamlive.importers.model import ImportedModel, ImportOptions
from pamlive.importers.writer import check, ensure_writable, write_package

Importer = Callable[[Path, Path, ImportOptions], ImportedModel]


def _importer(kind: str) -> Importer:
    """The converter for a source kind (imported late: they pull in TensorFlow)."""
    if kind in (formats.KETOS_KT, formats.KETOS_KTPB):
        from pamlive.importers import ketos

        return ketos.import_kt if kind == formats.KETOS_KT else ketos.import_ktpb
    if kind == formats.KOOGU_SAVEDMODEL:
        from pamlive.importers import koogu

        return koogu.import_savedmodel
    from pamlive.importers import pamguard

    return {formats.KOOGU: pamguard.import_koogu,
            formats.PAMGUARD_TF: pamguard.import_tf_generic,
            formats.PAMGUARD_TORCH: pamguard.import_torch_generic,
            formats.PAMGUARD_ONNX: pamguard.import_onnx_generic,
            formats.PAMGUARD_ZIP: pamguard.import_zip}[kind]


def default_name(source: Path) -> str:
    stem = source.name if source.is_dir() else source.stem
    if source.name == "saved_model.pb":
        stem = source.parent.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "imported"


def convert(source: str | Path, work_dir: str | Path, name: str | None = None,
            classes: Sequence[str] | None = None, sample_rate: int | None = None
            ) -> ImportedModel:
    """Convert ``source`` (unpacking into ``work_dir``) and check the result runs."""
    source, work_dir = Path(source), Path(work_dir)
    kind = formats.detect_kind(source)
    work_dir.mkdir(parents=True, exist_ok=True)
    options = ImportOptions(name or default_name(source), classes, sample_rate)
    model = _importer(kind)(source, work_dir, options)
    check(model, str(source))
    return model


def import_model(source: str | Path, out_dir: str | Path, name: str | None = None,
                 force: bool = False, classes: Sequence[str] | None = None,
                 sample_rate: int | None = None) -> Path:
    """Convert ``source`` into the package folder ``out_dir``; returns ``out_dir``."""
    out_dir = Path(out_dir)
    if batdetect2.is_batdetect2_source(source):
        if classes or sample_rate:
            raise ModelError(f"{source}: a batdetect2 checkpoint names its own classes and "
                             "rate (--classes and --sample-rate do not apply)")
        return batdetect2.import_package(source, out_dir, name, force)
    ensure_writable(out_dir, force)  # fail before a slow conversion, not after it
    with tempfile.TemporaryDirectory(prefix="pamlive-import-") as work:
        model = convert(source, work, name, classes, sample_rate)
        return write_package(model, out_dir, force=force)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pamlive import-model",
        description="Convert a PAMGuard generic (SavedModel folder, TorchScript or ONNX + "
                    ".pdtf, or PAMGuard's .zip of them), "
                    "Ketos (.kt, .ktpb), Koogu (.kgu, SavedModel folder) or batdetect2 "
                    "(.pth.tar, its installed package folder, or the word 'batdetect2' for "
                    "the installed package) model into a pamlive model package.")
    p.add_argument("source", type=Path, help="model file or folder, or 'batdetect2'")
    p.add_argument("-o", "--output", type=Path, required=True, help="package folder to write")
    p.add_argument("--name", help="package name (default: the source file name)")
    p.add_argument("--classes", help="comma-separated class names, in model output order "
                   "(Ketos models carry none)")
    p.add_argument("--sample-rate", type=int, metavar="HZ",
                   help="sample rate the model takes, for models whose metadata has none "
                        "(a Koogu SavedModel without assets/audio_settings.json)")
    p.add_argument("--force", action="store_true", help="replace an existing package")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; a user error is one line on stderr and exit status 2."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    try:
        out = import_model(args.source, args.output, args.name, args.force, classes,
                           args.sample_rate)
    except PamliveError as exc:
        print(f"pamlive: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"{args.source} -> {out}")
    return 0


__all__ = ["ImportedModel", "ModelError", "convert", "import_model", "main"]
