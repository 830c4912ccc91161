"""``pamlive analyze``: the detection pipeline over files, as fast as the machine allows.

One Raven selection table per input file. A bad or missing input is reported and
skipped; the detections found in a file before a read error are still written. Ctrl-C
stops at once, says which tables are complete and leaves no partial table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pamlive.detection import Detection
from pamlive.errors import AudioInputError, PamliveError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage
from pamlive.pipeline import ScoreSink, StreamDetector
from pamlive.raven import table_paths, write_selection_table
from pamlive.sources.files import AudioFileInfo, expand_inputs, iter_blocks, open_audio

BLOCK_SAMPLES = 1 << 19  # samples (frames x channels) read and processed at a time


def block_frames(channels: int) -> int:
    """Frames per block: memory stays flat whatever the file's length or channel count
    (a block's windows, features and scores all scale with frames x channels)."""
    return max(4096, min(1 << 18, BLOCK_SAMPLES // channels))


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
    package: ModelPackage,
    outdir: Path,
    *,
    hop_s: float = 1.0,
    max_merge: int = 10,
    thresholds: Mapping[str, float] | None = None,
    threads: int = 1,
    console: Console | None = None,
    progress: bool = True,
    on_scores: Callable[[Path], ScoreSink] | None = None,
    raven_rows: str = "detection",
) -> AnalyzeResult:
    """Analyse every input; ``on_scores(path)`` may give a per-window score sink;
    ``raven_rows`` is ``detection`` (one row each) or ``channel`` (one per channel)."""
    classifier = Classifier(package, threads=threads)
    classifier.check_features(package.chain().output_shape(package.segment_samples))
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PamliveError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from None
    console = console or Console(stderr=True)
    result = AnalyzeResult()
    infos = {}
    for p in _expand(inputs, result):
        try:
            infos[p] = open_audio(p)
        except AudioInputError as exc:
            result.files.append(FileResult(p, None, [], 0.0, str(exc)))
            _report(exc)
    tables = table_paths(outdir, list(infos))
    total = sum(i.frames for i in infos.values())
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("analysing", total=total)
        try:
            for path, info in infos.items():
                bar.update(task, description=path.name)
                result.files.append(_analyze_one(
                    path, info, tables[path],
                    StreamDetector(package, classifier, info.sample_rate, info.channels,
                                   hop_s=hop_s, max_merge=max_merge, thresholds=thresholds,
                                   on_scores=on_scores(path) if on_scores else None),
                    lambda n: bar.advance(task, n), raven_rows))
        except KeyboardInterrupt:
            _report_interrupt(result, list(infos))
            raise
    return result


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


def _analyze_one(path: Path, info: AudioFileInfo, table: Path, detector: StreamDetector,
                 advance: Callable[[int], None], raven_rows: str) -> FileResult:
    """One input through the detector into its table (written whole, or not at all)."""
    found: list[Detection] = []
    error = None
    try:
        for block in iter_blocks(path, block_frames(info.channels)):
            found.extend(detector.push(block))
            advance(block.shape[0])
    except PamliveError as exc:
        error = str(exc)
        _report(exc)
    found.extend(detector.finish())
    written: Path | None = table
    try:
        write_selection_table(table, found, rows=raven_rows)
    except OSError as exc:  # e.g. disk full: report it, keep analysing the others
        error = f"{table}: cannot write selection table ({exc.strerror or exc})"
        print(f"pamlive: error: {error}", file=sys.stderr)
        written = None
    return FileResult(path, written, found, info.duration_s, error)
