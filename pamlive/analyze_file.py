"""One input of ``pamlive analyze`` through its detector into its table, written whole or
not at all: the routine for detections (Raven selection table; bearings, a score table)
and the one for an event model's calls (a row per call). Each output kind names its own
(``pamlive/kinds/``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pamlive.array.bearing import BearingEstimator
from pamlive.array.offline import file_reader, locate
from pamlive.calls.call import Call
from pamlive.calls.stream import EventDetector
from pamlive.config import ArraySettings
from pamlive.detection import Detection
from pamlive.ensemble import EnsembleDetector
from pamlive.errors import PamliveError
from pamlive.pipeline import StreamDetector
from pamlive.raven import write_call_table, write_selection_table
from pamlive.scores import ScoreTable
from pamlive.sources.files import AudioFileInfo, iter_blocks


@dataclass
class FileResult:
    path: Path
    table: Path | None
    detections: list[Detection]
    duration_s: float
    error: str | None = None
    calls: list[Call] = field(default_factory=list)  # an event model's output



@dataclass(frozen=True)
class Outputs:
    """What to write beside each input's detections."""

    scores: bool = False  # a per-window score table (:mod:`pamlive.scores`)
    array: ArraySettings | None = None  # bearings and channel agreement (``[array]``)
    raven_rows: str = "detection"  # one row per detection, or per channel of it



def report(exc: Exception | str) -> None:
    """One plain line per bad input (rich would wrap it), shown above the progress bar."""
    print(f"pamlive: error: {exc}", file=sys.stderr)



def read_blocks(path: Path, block: int, push: Callable[[np.ndarray], None],
          advance: Callable[[int], None]) -> str | None:
    """Every block of ``path`` through ``push``; a read error is reported and returned."""
    try:
        for samples in iter_blocks(path, block):
            push(samples)
            advance(samples.shape[0])
    except PamliveError as exc:
        report(exc)
        return str(exc)
    return None



def detections_file(path: Path, info: AudioFileInfo, table: Path,
                    detector: StreamDetector | EnsembleDetector,
                    score_table: ScoreTable | None, block: int,
                    advance: Callable[[int], None], outputs: Outputs) -> FileResult:
    """One input through the detector into its table (written whole, or not at all)."""
    found: list[Detection] = []
    error = read_blocks(path, block, lambda x: found.extend(detector.push(x)), advance)
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
            report(later)
    if score_table is not None and (score_error := score_table.close(keep=error is None)):
        later = later or score_error
        report(score_error)
    written, error = write_table(table, error, lambda: write_selection_table(
        table, found, outputs.raven_rows, bearings=outputs.array is not None))
    return FileResult(path, written, found, info.duration_s, error or later)



def calls_file(path: Path, info: AudioFileInfo, table: Path, detector: EventDetector,
               _score_table: None, block: int, advance: Callable[[int], None],
               _outputs: Outputs) -> FileResult:
    """One input through an event model into its table: one row per call."""
    calls: list[Call] = []
    error = detector.model.spec.band_problem(info.sample_rate)
    if error is not None:  # a failed input, not a table of no calls
        error = f"{path}: {error}"
        report(error)
    else:
        error = read_blocks(path, block, lambda x: calls.extend(detector.push(x)), advance)
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
        report(error)
        return None, error
    return table, None


FileAnalysis = Callable[[Path, AudioFileInfo, Path, Any, Any, int, Callable[[int], None],
                         Outputs], FileResult]
