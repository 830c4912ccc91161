"""Per-window score tables (``pamlive analyze --scores``): ``<input stem>.scores.csv``.

One row per scored window and channel, in stream order, written as the windows are
scored (memory stays flat on long files): ``filename``, ``channel`` (1-based, as in the
Raven tables), ``start`` / ``end`` (seconds from the start of the file), ``start_utc`` /
``end_utc`` (when the file name gives its start time, else empty), then one column per
class with the scores the detections are made from: the model's, or for an ensemble the
fused scores. An ensemble adds, per member, ``<member>:start``, ``<member>:end`` and
``<member>:<class>`` for the member window aligned to the row (empty when the member had
none). Scores are written with the shortest text that reads back to the same number.

CSV, not tab-separated: the table is a data table (one row per window, not per
selection), laid out like Ketos's score and detection tables (``filename,start,end,...``
in seconds, comma-separated) that Ketos and Koogu users load with pandas or R; a
tab-separated file beside the Raven tables could be mistaken for a selection table.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import IO

import numpy as np

from pamlive.alerts.schema import utc_at_sample, utc_iso
from pamlive.ensemble import Ensemble, FusedWindow
from pamlive.windows import Window

SCORES_SUFFIX = ".scores.csv"
TIME_COLUMNS = ["filename", "channel", "start", "end", "start_utc", "end_utc"]


def scores_path(outdir: Path, audio_path: Path) -> Path:
    return outdir / f"{audio_path.stem}{SCORES_SUFFIX}"


class ScoreTable:
    """A score sink for one input file (``on_scores`` of the stream or ensemble detector).

    Written to ``<name>.part`` and renamed on :meth:`close`, like the selection tables. A
    write error (e.g. a full disk) stops the table, not the analysis: :meth:`close` says it.
    """

    def __init__(self, path: Path, audio_path: Path, class_names: Sequence[str],
                 ensemble: Ensemble | None, sample_rate: int, start_utc: datetime | None
                 ) -> None:
        self.path = path
        members = ensemble.members if ensemble else []
        self._widths = [len(m.package.class_names) for m in members]
        columns = TIME_COLUMNS + list(class_names)
        for m in members:
            columns += [f"{m.name}:start", f"{m.name}:end"]
            columns += [f"{m.name}:{c}" for c in m.package.class_names]
        self._tmp = path.with_name(path.name + ".part")
        self._name = audio_path.name
        self._rate = sample_rate
        self._start_utc = start_utc
        self._error: OSError | None = None
        self._fh: IO[str] | None = None
        try:
            self._fh = self._tmp.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh, lineterminator="\n")
            self._writer.writerow(columns)
        except OSError as exc:
            self._error = exc

    def __call__(self, window: Window | FusedWindow, scores: np.ndarray) -> None:
        if self._error is None:
            try:
                self._write(window, scores)
            except OSError as exc:
                self._error = exc

    def _write(self, window: Window | FusedWindow, scores: np.ndarray) -> None:
        parts = window.parts if isinstance(window, FusedWindow) else []
        for ch in range(scores.shape[0]):
            row = [self._name, str(ch + 1), *self._times(window.start_sample, window.end_sample),
                   self._utc(window.start_sample), self._utc(window.end_sample),
                   *map(str, scores[ch])]
            for part, width in zip(parts, self._widths, strict=True):
                if part is None:
                    row += [""] * (2 + width)
                else:
                    row += [*self._times(part[0].start_sample, part[0].end_sample),
                            *map(str, part[1][ch])]
            self._writer.writerow(row)

    def close(self, keep: bool = True) -> str | None:
        """Finish the table, or leave none where its input failed (not ``keep``) or it
        could not be written; that problem in one line."""
        try:
            if self._fh is not None:
                self._fh.close()
            if keep and self._error is None:
                self._tmp.replace(self.path)
                return None
        except OSError as exc:
            self._error = self._error or exc
        for stale in (self._tmp, self.path):
            with suppress(OSError):
                stale.unlink(missing_ok=True)
        if not keep or self._error is None:
            return None
        return f"{self.path}: cannot write score table ({self._error.strerror or self._error})"

    def _times(self, start: int, end: int) -> list[str]:
        return [f"{start / self._rate:.6f}", f"{end / self._rate:.6f}"]

    def _utc(self, sample: int) -> str:
        if self._start_utc is None:
            return ""
        return utc_iso(utc_at_sample(self._start_utc, sample, self._rate))
