"""``pamlive analyze``: the detection pipeline over files, as fast as the machine allows.

One Raven selection table per input file. A bad or missing input is reported and
skipped, and a failed input (a read error mid-file included) leaves no table, so every
table on disk is a whole input. Ctrl-C stops at once, says which tables are complete and
leaves no partial table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pamlive.array.bearing import BearingEstimator
from pamlive.array.offline import file_reader, locate
from pamlive.config import ArraySettings, refuse_event_keys
from pamlive.detection import Detection
from pamlive.ensemble import Ensemble, EnsembleDetector
from pamlive.errors import AudioInputError, PamliveError
from pamlive.events.call import Call
from pamlive.events.gate import ActivityGate, open_gate
from pamlive.events.stream import EventDetector
from pamlive.inference.classifier import Classifier
from pamlive.inference.events import EventModel
from pamlive.inference.package import ModelPackage
from pamlive.pipeline import StreamDetector
from pamlive.raven import TABLE_SUFFIX, table_paths, write_call_table, write_selection_table
from pamlive.scores import SCORES_SUFFIX, ScoreTable
from pamlive.sources.files import (
    AudioFileInfo,
    expand_inputs,
    iter_blocks,
    open_audio,
    start_time_from_name,
)
from pamlive.windows import input_hop_frames

BLOCK_SAMPLES = 1 << 19  # samples (frames x channels) read and processed at a time


def analysis_block_frames(package: ModelPackage | Ensemble, input_rate: int, channels: int,
                          hop_s: float) -> int:
    """Frames per read: memory stays flat whatever the file's length or channel count (a
    block's windows, features and scores all scale with frames x channels), and blocks
    are a whole number of window hops where that is possible, so that
    ``pamlive analyze --cluster`` can split a file into chunks that see exactly the windows
    (and ONNX batches) of a serial run."""
    target = max(4096, min(1 << 18, BLOCK_SAMPLES // channels))
    if isinstance(package, Ensemble):  # members hop differently: no common boundary
        return target
    hop_in = input_hop_frames(package, input_rate, hop_s)
    return target if hop_in is None else hop_in * max(1, round(target / hop_in))


@dataclass
class FileResult:
    path: Path
    table: Path | None
    detections: list[Detection]
    duration_s: float
    error: str | None = None
    calls: list[Call] = field(default_factory=list)  # an event model's output


@dataclass
class AnalyzeResult:
    files: list[FileResult] = field(default_factory=list)
    gate: ActivityGate | None = None  # an event model's: channel-windows run and skipped

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.error]


def _report(exc: Exception | str) -> None:
    """One plain line per bad input (rich would wrap it), shown above the progress bar."""
    print(f"pamlive: error: {exc}", file=sys.stderr)


@dataclass(frozen=True)
class Outputs:
    """What to write beside each input's detections."""

    scores: bool = False  # a per-window score table (:mod:`pamlive.scores`)
    array: ArraySettings | None = None  # bearings and channel agreement (``[array]``)
    raven_rows: str = "detection"  # one row per detection, or per channel of it


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
    raven_rows: str = "detection",
    detection_threshold: float | None = None,
    activity_gate: float | bool = False,
    precision: str = "float32",
) -> AnalyzeResult:
    """Analyse every input with a model package or an ensemble of them; with ``scores``,
    also write a per-window score table per input (:mod:`pamlive.scores`); ``array``:
    bearings and channel agreement (``[array]``); ``raven_rows``: ``detection`` (one row
    each) or ``channel`` (Raven's multichannel convention, one row per channel).

    An event model (``package.events``) writes one row per call instead (its own box and
    species; ``detection_threshold`` replaces the package's; ``activity_gate``: the level
    of :mod:`pamlive.events.gate`, False: off; ``precision``: its network's arithmetic,
    :class:`~pamlive.inference.events.EventModel`); it has no window scores and no bearings,
    so ``scores`` and ``array`` are refused with it."""
    outputs = Outputs(scores, array, raven_rows)
    if isinstance(package, ModelPackage) and package.events is not None:
        refuse_event_model(package, scores=scores, array=array is not None)
        gate = open_gate(activity_gate, package.events.threshold(detection_threshold))
        result = _analyze(inputs, outdir, console, progress, package, hop_s, outputs,
                          _event_detectors(package, hop_s, detection_threshold, threads, gate,
                                           precision))
        result.gate = gate
        return result
    refuse_event_keys(str(package.path) if isinstance(package, ModelPackage) else "an ensemble",
                      activity_gate=activity_gate, precision=precision)
    new_detector = _detectors(package, hop_s=hop_s, max_merge=max_merge,
                              thresholds=thresholds or {}, threads=threads)
    return _analyze(inputs, outdir, console, progress, package, hop_s, outputs, new_detector)


def refuse_event_model(package: ModelPackage, *, scores: bool = False, array: bool = False,
                       cluster: bool = False) -> None:
    """One line for what an event model cannot do (it has calls, not window scores)."""
    what = ("--scores (window scores)" if scores else "[array] bearings" if array
            else "--cluster" if cluster else None)
    if what is not None:
        raise PamliveError(f"{package.path} is an event model: it reports calls, and "
                           f"{what} is for window-score models; run analyze without it")


def _analyze(inputs: Sequence[str | Path], outdir: Path, console: Console | None,
             progress: bool, package: ModelPackage | Ensemble, hop_s: float,
             outputs: Outputs, new_detector: Callable[[int, int, ScoreTable | None], Detector]
             ) -> AnalyzeResult:
    """Every input through a detector from ``new_detector`` into its table."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PamliveError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from None
    console = console or Console(stderr=True)
    result = AnalyzeResult()
    infos = open_inputs(inputs, result)
    tables = table_paths(outdir, list(infos))
    total = sum(i.frames for i in infos.values())
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("analysing", total=total)
        try:
            for path, info in infos.items():
                bar.update(task, description=path.name)
                score_table = (_open_score_table(tables[path], path, package, info)
                               if outputs.scores else None)
                result.files.append(_analyze_one(
                    path, info, tables[path],
                    new_detector(info.sample_rate, info.channels, score_table), score_table,
                    analysis_block_frames(package, info.sample_rate, info.channels, hop_s),
                    lambda n: bar.advance(task, n), outputs))
        except KeyboardInterrupt:
            _report_interrupt(result, list(infos))
            raise
    return result


def open_inputs(inputs: Sequence[str | Path], result: AnalyzeResult
                ) -> dict[Path, AudioFileInfo]:
    """The readable audio files of every input, in time order; a missing or unreadable
    input is reported and recorded in ``result`` as failed, and the others go on."""
    infos = {}
    for p in _expand(inputs, result):
        try:
            infos[p] = open_audio(p)
        except AudioInputError as exc:
            result.files.append(FileResult(p, None, [], 0.0, str(exc)))
            _report(exc)
    return infos


def _expand(inputs: Sequence[str | Path], result: AnalyzeResult) -> list[Path]:
    """The audio files of every input in time order; a missing input is reported and
    recorded as a failed input, like a corrupt file."""
    found = []
    for p in inputs:
        try:
            expand_inputs([p])
        except AudioInputError as exc:
            result.files.append(FileResult(Path(p), None, [], 0.0, str(exc)))
            _report(exc)
        else:
            found.append(p)
    return expand_inputs(found) if found else []


def _report_interrupt(result: AnalyzeResult, paths: list[Path]) -> None:
    """Which tables an interrupted run completed, and which inputs have none."""
    done = [f for f in result.files if f.table is not None]
    finished = {f.path for f in result.files}
    missing = [p for p in paths if p not in finished]
    lines = [f"pamlive: interrupted: {len(done)} table(s) complete"
             + (f", no table for {len(missing)} input(s) from {missing[0]} on"
                if missing else "")]
    lines += [f"  complete: {f.table}" for f in done]
    print("\n".join(lines), file=sys.stderr)


def _read(path: Path, block: int, push: Callable[[np.ndarray], None],
          advance: Callable[[int], None]) -> str | None:
    """Every block of ``path`` through ``push``; a read error is reported and returned."""
    try:
        for samples in iter_blocks(path, block):
            push(samples)
            advance(samples.shape[0])
    except PamliveError as exc:
        _report(exc)
        return str(exc)
    return None


def _analyze_one(path: Path, info: AudioFileInfo, table: Path, detector: Detector,
                 score_table: ScoreTable | None, block: int,
                 advance: Callable[[int], None], outputs: Outputs) -> FileResult:
    """One input through the detector into its table (written whole, or not at all)."""
    if isinstance(detector, EventDetector):
        return _analyze_calls(path, info, table, detector, block, advance)
    found: list[Detection] = []
    error = _read(path, block, lambda x: found.extend(detector.push(x)), advance)
    found.extend(detector.finish())
    # A failure after the audio was read whole (no bearings, a score table that cannot be
    # written) fails the input but keeps its detections: the selection table is written.
    later: str | None = None
    if outputs.array is not None and error is None:
        try:
            estimator = BearingEstimator(outputs.array)
            estimator.check_channels(info.channels)
            found = locate(found, file_reader(path), outputs.array, estimator)
        except (PamliveError, RuntimeError, OSError) as exc:
            later = f"{path}: no bearings: {exc}"
            _report(later)
    if score_table is not None and (score_error := score_table.close(keep=error is None)):
        later = later or score_error
        _report(score_error)
    written, error = write_table(table, error, lambda: write_selection_table(
        table, found, outputs.raven_rows, bearings=outputs.array is not None))
    return FileResult(path, written, found, info.duration_s, error or later)


def _analyze_calls(path: Path, info: AudioFileInfo, table: Path, detector: EventDetector,
                   block: int, advance: Callable[[int], None]) -> FileResult:
    """One input through an event model: one row per call."""
    calls: list[Call] = []
    error = detector.model.spec.band_problem(info.sample_rate)
    if error is not None:  # a failed input, not a table of no calls
        error = f"{path}: {error}"
        _report(error)
    else:
        error = _read(path, block, lambda x: calls.extend(detector.push(x)), advance)
    calls.extend(detector.finish())
    written, error = write_table(table, error, lambda: write_call_table(table, calls))
    return FileResult(path, written, [], info.duration_s, error, calls)


def write_table(table: Path, error: str | None, write: Callable[[], None]
                ) -> tuple[Path | None, str | None]:
    """The table written whole, or, for an input that failed (``error``), none at all: not
    even one an earlier run left under its name, so that a table on disk always means a
    whole input. A write failure (e.g. disk full) is reported; the other inputs go on."""
    if error is not None:
        with suppress(OSError):
            table.unlink(missing_ok=True)
        return None, error
    try:
        write()
    except OSError as exc:
        error = f"{table}: cannot write selection table ({exc.strerror or exc})"
        _report(error)
        return None, error
    return table, None


Detector = StreamDetector | EnsembleDetector | EventDetector


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


def _event_detectors(package: ModelPackage, hop_s: float, threshold: float | None,
                     threads: int, gate: ActivityGate, precision: str
                     ) -> Callable[[int, int, ScoreTable | None], Detector]:
    """An event detector per input (rate, channels); the model is loaded once, here, and
    ``gate`` counts over all inputs."""
    model = EventModel(package, threads=threads, precision=precision)
    return lambda rate, channels, _sink: EventDetector(model, rate, channels, hop_s=hop_s,
                                                       threshold=threshold, gate=gate)


def _open_score_table(table: Path, path: Path, package: ModelPackage | Ensemble,
                      info: AudioFileInfo) -> ScoreTable:
    """Beside the input's selection table, under the same (collision-free) name."""
    ensemble = package if isinstance(package, Ensemble) else None
    target = table.with_name(table.name.removesuffix(TABLE_SUFFIX) + SCORES_SUFFIX)
    return ScoreTable(target, path, package.class_names, ensemble,
                      info.sample_rate, start_time_from_name(path))
