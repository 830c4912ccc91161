"""``pamlive analyze``: the detection pipeline over files, as fast as the machine allows.

One Raven selection table per input file. A bad file is reported and skipped; the
detections found in a file before a read error are still written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pamlive.array.bearing import BearingEstimator
from pamlive.array.offline import file_reader, locate
from pamlive.array.settings import ArraySettings
from pamlive.detection import Detection
from pamlive.ensemble import Ensemble, EnsembleDetector
from pamlive.errors import AudioInputError, PamliveError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage
from pamlive.pipeline import StreamDetector
from pamlive.raven import table_path, write_selection_table
from pamlive.scores import ScoreTable, scores_path
from pamlive.sources.files import (
    AudioFileInfo,
    expand_inputs,
    iter_blocks,
    open_audio,
    start_time_from_name,
)

BLOCK_FRAMES = 1 << 18  # about this many frames per read


def analysis_block_frames(package: ModelPackage | Ensemble, input_rate: int,
                          hop_s: float) -> int:
    """Frames per read: a whole number of window hops near ``BLOCK_FRAMES``.

    Reads that start on a hop boundary let ``pamlive analyze --cluster`` split a file
    into chunks that see exactly the windows (and ONNX batches) of a serial run.
    """
    if isinstance(package, Ensemble):  # members hop differently: no common boundary
        return BLOCK_FRAMES
    hop_model = round(hop_s * package.sample_rate)
    hop_in, rest = divmod(hop_model * input_rate, package.sample_rate)
    if rest or hop_in <= 0:
        return BLOCK_FRAMES
    return hop_in * max(1, round(BLOCK_FRAMES / hop_in))


@dataclass
class FileResult:
    path: Path
    table: Path | None
    detections: list[Detection]
    duration_s: float
    error: str | None = None


@dataclass
class AnalyzeResult:
    files: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.error]


def _report(exc: Exception) -> None:
    """One plain line per bad input (rich would wrap it), shown above the progress bar."""
    print(f"pamlive: error: {exc}", file=sys.stderr)


def analyze_files(
    inputs: Sequence[str | Path],
    package: ModelPackage | Ensemble,
    outdir: Path,
    *,
    hop_s: float = 1.0,
    max_merge: int = 10,
    thresholds: Mapping[str, float] | None = None,
    threads: int = 1,
    console: Console | None = None,
    progress: bool = True,
    scores: bool = False,
    array: ArraySettings | None = None,
) -> AnalyzeResult:
    """Analyse every input with a model package or an ensemble of them; with ``scores``,
    also write a per-window score table per input (:mod:`pamlive.scores`); ``array``:
    bearings and channel agreement for the detections (``[array]``)."""
    new_detector = _detectors(package, hop_s=hop_s, max_merge=max_merge,
                              thresholds=thresholds or {}, threads=threads)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PamliveError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from None
    console = console or Console(stderr=True)
    result = AnalyzeResult()
    paths = expand_inputs(inputs)
    infos = {}
    for p in paths:
        try:
            infos[p] = open_audio(p)
        except AudioInputError as exc:
            result.files.append(FileResult(p, None, [], 0.0, str(exc)))
            _report(exc)
    total = sum(i.frames for i in infos.values())
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("analysing", total=total)
        for path, info in infos.items():
            bar.update(task, description=path.name)
            score_table = _open_score_table(outdir, path, package, info) if scores else None
            detector = new_detector(info.sample_rate, info.channels, score_table)
            found: list[Detection] = []
            error = None
            try:
                block_frames = analysis_block_frames(package, info.sample_rate, hop_s)
                for block in iter_blocks(path, block_frames):
                    found.extend(detector.push(block))
                    bar.advance(task, block.shape[0])
            except PamliveError as exc:
                error = str(exc)
                _report(exc)
            found.extend(detector.finish())
            if array is not None:
                try:
                    estimator = BearingEstimator(array)
                    estimator.check_channels(info.channels)
                    found = locate(found, file_reader(path), array, estimator)
                except (PamliveError, RuntimeError, OSError) as exc:  # detections kept
                    error = error or f"{path}: no bearings: {exc}"
                    print(f"pamlive: error: {error}", file=sys.stderr)
            score_error = score_table.close() if score_table is not None else None
            if score_error:
                error = score_error
                print(f"pamlive: error: {error}", file=sys.stderr)
            table: Path | None = table_path(outdir, path)
            try:
                write_selection_table(table, found, bearings=array is not None)
            except OSError as exc:  # e.g. disk full: report it, keep analysing the others
                error = f"{table}: cannot write selection table ({exc.strerror or exc})"
                print(f"pamlive: error: {error}", file=sys.stderr)
                table = None
            result.files.append(FileResult(path, table, found, info.duration_s, error))
    return result


Detector = StreamDetector | EnsembleDetector


def _detectors(package: ModelPackage | Ensemble, *, hop_s: float, max_merge: int,
               thresholds: Mapping[str, float], threads: int
               ) -> Callable[[int, int, ScoreTable | None], Detector]:
    """A detector per input (rate, channels, score sink); models are loaded once, here."""
    if isinstance(package, Ensemble):
        ensemble = package
        return lambda rate, channels, sink: EnsembleDetector(
            ensemble, rate, channels, max_merge=max_merge, on_scores=sink)
    model = package
    classifier = Classifier(model, threads=threads)
    classifier.check_features(model.chain().output_shape(model.segment_samples))
    return lambda rate, channels, sink: StreamDetector(
        model, classifier, rate, channels, hop_s=hop_s, max_merge=max_merge,
        thresholds=thresholds, on_scores=sink)


def _open_score_table(outdir: Path, path: Path, package: ModelPackage | Ensemble,
                      info: AudioFileInfo) -> ScoreTable:
    ensemble = package if isinstance(package, Ensemble) else None
    return ScoreTable(scores_path(outdir, path), path, package.class_names, ensemble,
                      info.sample_rate, start_time_from_name(path))
