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

from pamlive.detection import Detection
from pamlive.errors import AudioInputError, PamliveError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage
from pamlive.pipeline import ScoreSink, StreamDetector
from pamlive.raven import table_path, write_selection_table
from pamlive.sources.files import expand_inputs, iter_blocks, open_audio

BLOCK_FRAMES = 1 << 18


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
) -> AnalyzeResult:
    """Analyse every input; ``on_scores(path)`` may give a per-window score sink."""
    classifier = Classifier(package, threads=threads)
    classifier.check_features(package.chain().output_shape(package.segment_samples))
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
            detector = StreamDetector(package, classifier, info.sample_rate, info.channels,
                                      hop_s=hop_s, max_merge=max_merge, thresholds=thresholds,
                                      on_scores=on_scores(path) if on_scores else None)
            found: list[Detection] = []
            error = None
            try:
                for block in iter_blocks(path, BLOCK_FRAMES):
                    found.extend(detector.push(block))
                    bar.advance(task, block.shape[0])
            except PamliveError as exc:
                error = str(exc)
                _report(exc)
            found.extend(detector.finish())
            table = table_path(outdir, path)
            written: Path | None = table
            try:
                write_selection_table(table, found)
            except OSError as exc:  # e.g. disk full: report it, keep analysing the others
                error = f"{table}: cannot write selection table ({exc.strerror or exc})"
                print(f"pamlive: error: {error}", file=sys.stderr)
                written = None
            result.files.append(FileResult(path, written, found, info.duration_s, error))
    return result
