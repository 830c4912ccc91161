"""Raven selection tables (docs/contracts.md §3): write detections, read tables back."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from pamlive.detection import Detection

COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
           "High Freq (Hz)", "Class", "Score"]
EXTRA_COLUMNS = ["Channels", "Begin Sample", "End Sample", "Windows"]
TABLE_SUFFIX = ".selections.txt"


def table_path(outdir: Path, audio_path: Path) -> Path:
    return outdir / f"{audio_path.stem}{TABLE_SUFFIX}"


def write_selection_table(path: Path, detections: Sequence[Detection]) -> None:
    """One row per detection, times in seconds from the start of the input file."""
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS + EXTRA_COLUMNS)
        ordered = sorted(detections, key=lambda d: (d.start_sample, d.class_name))
        for i, d in enumerate(ordered, start=1):
            writer.writerow([
                i, "Spectrogram 1", d.best_channel + 1, f"{d.start_s:.4f}", f"{d.end_s:.4f}",
                _freq(d.low_freq), _freq(d.high_freq), d.class_name, f"{d.score:.4f}",
                ",".join(str(c + 1) for c in d.channels), d.start_sample, d.end_sample,
                d.n_windows,
            ])
    tmp.replace(path)


def _freq(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def read_selection_table(path: Path) -> list[dict[str, str]]:
    """Rows as dicts keyed by column name (at least the docs/contracts.md §3 columns)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if rows and not set(COLUMNS) <= set(rows[0]):
        missing = set(COLUMNS) - set(rows[0])
        raise ValueError(f"{path}: not a Raven selection table (missing {sorted(missing)})")
    return rows
