"""``pamlive analyze``: the detection pipeline over files, as fast as the machine allows.

One Raven selection table per input file. A bad or missing input is reported and
skipped, and a failed input (a read error mid-file included) leaves no table, so every
table on disk is a whole input. Ctrl-C stops at once, says which tables are complete and
leaves no partial table.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pamlive.analyze_file import FileResult, Outputs, report
from pamlive.calls.gate import ActivityGate
from pamlive.config import ArraySettings, ModelConfig
from pamlive.ensemble import Ensemble
from pamlive.errors import AudioInputError, PamliveError
from pamlive.inference.package import ModelPackage
from pamlive.kinds import OutputKind, Uses, kind_of
from pamlive.raven import TABLE_SUFFIX, table_paths
from pamlive.scores import SCORES_SUFFIX
from pamlive.sources.files import (
    AudioFileInfo,
    expand_inputs,
    open_audio,
    start_time_from_name,
)

BLOCK_SAMPLES = 1 << 19  # samples (frames x channels) read and processed at a time


def analysis_block_frames(hop_in: int | None, channels: int) -> int:
    """Frames per read: memory stays flat whatever the file's length or channel count (a
    block's windows, features and scores all scale with frames x channels), and blocks
    are a whole number of window hops where that is possible, so that
    ``pamlive analyze --cluster`` can split a file into chunks that see exactly the windows
    (and ONNX batches) of a serial run. ``hop_in``: the window hop in input frames (None:
    no common one, as for an ensemble's members)."""
    target = max(4096, min(1 << 18, BLOCK_SAMPLES // channels))
    return target if hop_in is None else hop_in * max(1, round(target / hop_in))


@dataclass
class AnalyzeResult:
    files: list[FileResult] = field(default_factory=list)
    gate: ActivityGate | None = None  # an event model's: channel-windows run and skipped

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.error]


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
    """Analyse every input with a model package or an ensemble of them, with these
    ``[model]`` settings (:func:`analyze_kind` does the work); ``thresholds`` override the
    package's, ``detection_threshold``, ``activity_gate`` and ``precision`` are an event
    model's (see :class:`~pamlive.config.ModelConfig`)."""
    model = ModelConfig(hop_s=hop_s, max_merge=max_merge, thresholds=dict(thresholds or {}),
                        threads=threads, detection_threshold=detection_threshold,
                        activity_gate=cast(Any, activity_gate),
                        precision=cast(Any, precision))
    return analyze_kind(inputs, kind_of(package, model), outdir, console=console,
                        progress=progress, outputs=Outputs(scores, array, raven_rows))


def analyze_kind(inputs: Sequence[str | Path], kind: OutputKind, outdir: Path, *,
                 console: Console | None = None, progress: bool = True,
                 outputs: Outputs | None = None) -> AnalyzeResult:
    """Analyse every input with the model(s) of ``kind`` (``pamlive/kinds/``); with
    ``outputs.scores``, also write a per-window score table per input
    (:mod:`pamlive.scores`); ``outputs.array``: bearings and channel agreement
    (``[array]``); ``outputs.raven_rows``: ``detection`` (one row each) or ``channel``
    (Raven's multichannel convention). An event model writes one row per call (its own
    box and species); what a kind cannot do is refused first, in one line."""
    outputs = outputs or Outputs()
    kind.refuse(Uses(array=outputs.array is not None, score_table=outputs.scores))
    result = _analyze(inputs, outdir, console, progress, kind, outputs)
    result.gate = kind.activity
    return result


def _analyze(inputs: Sequence[str | Path], outdir: Path, console: Console | None,
             progress: bool, kind: OutputKind, outputs: Outputs) -> AnalyzeResult:
    """Every input through a detector of ``kind`` into its table."""
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PamliveError(f"cannot create output folder {outdir}: {exc.strerror or exc}") from None
    console = console or Console(stderr=True)
    result = AnalyzeResult()
    infos = open_inputs(inputs, result)
    tables = table_paths(outdir, list(infos))
    total = sum(i.frames for i in infos.values())
    new_detector = kind.detectors()
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("analysing", total=total)
        try:
            for path, info in infos.items():
                bar.update(task, description=path.name)
                score_table = (kind.score_table(_scores_path(tables[path]), path,
                                                info.sample_rate, start_time_from_name(path))
                               if outputs.scores else None)
                result.files.append(kind.analyze_file(
                    path, info, tables[path],
                    new_detector(info.sample_rate, info.channels, score_table), score_table,
                    analysis_block_frames(kind.hop_frames(info.sample_rate), info.channels),
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
            report(exc)
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
            report(exc)
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


def _scores_path(table: Path) -> Path:
    """Beside the input's selection table, under the same (collision-free) name."""
    return table.with_name(table.name.removesuffix(TABLE_SUFFIX) + SCORES_SUFFIX)
