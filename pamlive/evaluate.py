"""Event-level accuracy of Raven selection tables against an annotation CSV.

Why event level: an operator acts on detections, not on 2-s windows, so the figures
that matter are how many calls raised a detection (recall), how many detections were
calls (precision) and how many false alarms an hour of listening brings. A detection
matches an annotation when their time intervals overlap (by more than zero seconds).

* recall = annotations matched by at least one detection / annotations
* precision = detections matching at least one annotation / detections
* false alarms per hour = unmatched detections / hours of audio (files without calls
  count in the hours; their detections are all false alarms)

Tables are matched to annotation rows by file stem (``x.selections.txt`` <-> ``x.wav``).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pamlive.errors import AudioInputError, PamliveError
from pamlive.raven import TABLE_SUFFIX
from pamlive.sources.files import AUDIO_SUFFIXES


@dataclass(frozen=True)
class Event:
    """A time interval in seconds from the start of its file; ``score`` for detections."""

    start: float
    end: float
    score: float = math.nan


@dataclass(frozen=True)
class Scores:
    """Event-level counts and the rates derived from them."""

    threshold: float | None
    annotations: int
    detections: int
    matched_annotations: int
    matched_detections: int
    audio_hours: float | None

    @property
    def recall(self) -> float:
        return self.matched_annotations / self.annotations if self.annotations else math.nan

    @property
    def precision(self) -> float:
        return self.matched_detections / self.detections if self.detections else math.nan

    @property
    def false_alarms(self) -> int:
        return self.detections - self.matched_detections

    @property
    def false_alarms_per_hour(self) -> float:
        if not self.audio_hours:
            return math.nan
        return self.false_alarms / self.audio_hours


def stem_of(name: str | Path) -> str:
    """The file stem that ties a table or an annotation row to its recording."""
    base = Path(str(name).replace("\\", "/")).name
    if base.endswith(TABLE_SUFFIX):
        return base[: -len(TABLE_SUFFIX)]
    return Path(base).stem


def read_annotations(path: str | Path) -> dict[str, list[Event]]:
    """Annotation CSV (columns ``filename``, ``start``, ``end``; others ignored) by stem."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = set(reader.fieldnames or [])
            missing = {"filename", "start", "end"} - fields
            if missing:
                raise PamliveError(
                    f"annotation file {path}: missing column(s) {', '.join(sorted(missing))}"
                )
            out: dict[str, list[Event]] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    start, end = float(row["start"]), float(row["end"])
                except (TypeError, ValueError):
                    raise PamliveError(
                        f"annotation file {path}, line {line}: start/end are not numbers"
                    ) from None
                if not end >= start:
                    raise PamliveError(f"annotation file {path}, line {line}: end before start")
                out.setdefault(stem_of(row["filename"]), []).append(Event(start, end))
    except OSError as e:
        raise PamliveError(f"cannot read annotation file {path}: {e.strerror or e}") from None
    return out


def read_raven_table(path: str | Path, class_name: str | None = None) -> list[Event]:
    """Detections of one Raven selection table (docs/contracts.md §3), optionally of one class."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            fields = set(reader.fieldnames or [])
            needed = {"Begin Time (s)", "End Time (s)"}
            if not needed <= fields:
                raise PamliveError(
                    f"{path}: not a Raven selection table (no Begin/End Time (s) columns)"
                )
            out = []
            for line, row in enumerate(reader, start=2):
                if class_name is not None and row.get("Class") != class_name:
                    continue
                score = row.get("Score")
                try:
                    begin, end = float(row["Begin Time (s)"]), float(row["End Time (s)"])
                    out.append(Event(begin, end, float(score) if score else math.nan))
                except (TypeError, ValueError):
                    raise PamliveError(
                        f"{path}, line {line}: times/score are not numbers"
                    ) from None
    except OSError as e:
        raise PamliveError(f"cannot read Raven table {path}: {e.strerror or e}") from None
    return out


def overlaps(a: Event, b: Event) -> bool:
    """True when the two intervals share more than zero seconds."""
    return a.start < b.end and b.start < a.end


def match_counts(detections: Sequence[Event], annotations: Sequence[Event]) -> tuple[int, int]:
    """(annotations overlapped by some detection, detections overlapping some annotation)."""
    matched_ann = sum(any(overlaps(a, d) for d in detections) for a in annotations)
    matched_det = sum(any(overlaps(d, a) for a in annotations) for d in detections)
    return matched_ann, matched_det


def score_events(
    detections: Mapping[str, Sequence[Event]],
    annotations: Mapping[str, Sequence[Event]],
    audio_hours: float | None,
    threshold: float | None = None,
) -> Scores:
    """Score the files in ``detections`` (stem -> events); stems absent from
    ``annotations`` are files without calls. With ``threshold``, only detections whose
    score reaches it count (a re-run at that threshold can split a merged detection;
    this filter cannot, so it approximates a re-run from above)."""
    n_ann = n_det = m_ann = m_det = 0
    for stem, dets in detections.items():
        if threshold is not None:
            dets = [d for d in dets if d.score >= threshold]
        anns = annotations.get(stem, [])
        a, d = match_counts(dets, anns)
        n_ann += len(anns)
        n_det += len(dets)
        m_ann += a
        m_det += d
    return Scores(threshold, n_ann, n_det, m_ann, m_det, audio_hours)


def audio_hours_of(paths: Iterable[str | Path]) -> float:
    """Total duration in hours of audio files (folders are searched recursively)."""
    total_s = 0.0
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(f for f in sorted(p.rglob("*")) if f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(p)
    if not files:
        raise AudioInputError("--audio: no audio files found")
    for f in files:
        if not f.is_file():
            raise AudioInputError(f"audio file not found: {f}")
        try:
            total_s += sf.info(str(f)).duration
        except (RuntimeError, sf.LibsndfileError) as e:
            raise AudioInputError(f"cannot read audio file {f}: {e}") from None
    return total_s / 3600.0


def load_tables(paths: Iterable[str | Path], class_name: str | None) -> dict[str, list[Event]]:
    """Raven tables (files, or folders holding ``*.selections.txt``) by file stem."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.glob("*" + TABLE_SUFFIX)))
        else:
            files.append(p)
    if not files:
        raise PamliveError("no Raven selection tables given")
    stems = [stem_of(f) for f in files]
    for stem in stems:
        if stems.count(stem) > 1:
            raise PamliveError(f"two tables for the same recording '{stem}'")
    return {stem: read_raven_table(f, class_name) for stem, f in zip(stems, files, strict=True)}


def parse_thresholds(text: Sequence[str]) -> list[float]:
    """Thresholds as ``0.5 0.7``, ``0.5,0.7`` or a range ``START:STOP:STEP`` (inclusive)."""
    out: list[float] = []
    for item in (t for chunk in text for t in chunk.split(",") if t):
        try:
            if ":" in item:
                start, stop, step = (float(x) for x in item.split(":"))
                if step <= 0:
                    raise ValueError
                out.extend(np.round(np.arange(start, stop + step / 2, step), 6).tolist())
            else:
                out.append(float(item))
        except ValueError:
            raise PamliveError(f"--thresholds: cannot read '{item}'") from None
    return out


def _threshold_text(threshold: float) -> str:
    """Three decimals, more where a threshold needs them (0.99999 stays 0.99999)."""
    text = f"{threshold:.3f}"
    return text if float(text) == threshold else f"{threshold:.6g}"


def format_scores(rows: Sequence[Scores]) -> str:
    """A plain text table, one line per threshold."""
    head = f"{'threshold':>9} {'recall':>7} {'precision':>9} {'FA/h':>7} {'calls':>6} " \
        f"{'found':>6} {'dets':>5} {'true':>5} {'false':>5}"
    lines = [head]
    for s in rows:
        thr = "table" if s.threshold is None else _threshold_text(s.threshold)
        lines.append(
            f"{thr:>9} {s.recall:7.3f} {s.precision:9.3f} {s.false_alarms_per_hour:7.2f} "
            f"{s.annotations:6d} {s.matched_annotations:6d} {s.detections:5d} "
            f"{s.matched_detections:5d} {s.false_alarms:5d}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pamlive evaluate",
        description="Score Raven selection tables against an annotation CSV (event level).",
    )
    p.add_argument("tables", nargs="+", help="Raven tables or folders of *.selections.txt")
    p.add_argument("--annotations", required=True, help="CSV with filename,start,end columns")
    hours = p.add_mutually_exclusive_group()
    hours.add_argument("--audio-hours", type=float, help="hours of audio the tables cover")
    hours.add_argument("--audio", nargs="+", help="the analysed audio files/folders (for hours)")
    p.add_argument("--class", dest="class_name", help="score only rows of this Class")
    p.add_argument(
        "--thresholds", nargs="+", default=[],
        help="also score detections with Score >= each threshold (e.g. 0.5:0.95:0.05)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``pamlive evaluate``: print recall, precision and false alarms per hour."""
    args = build_parser().parse_args(argv)
    annotations = read_annotations(args.annotations)
    tables = load_tables(args.tables, args.class_name)
    if args.audio_hours is not None and not args.audio_hours > 0:
        raise PamliveError("--audio-hours must be positive")
    hours = audio_hours_of(args.audio) if args.audio else args.audio_hours
    unscored = sorted(set(annotations) - set(tables))
    rows = [score_events(tables, annotations, hours)]
    rows += [score_events(tables, annotations, hours, t) for t in parse_thresholds(args.thresholds)]
    print(f"{len(tables)} file(s), "
          + (f"{hours:.3f} h of audio" if hours else "audio hours unknown (FA/h n/a)"))
    if unscored:
        print(f"note: annotations of {len(unscored)} file(s) without a table are not scored: "
              + ", ".join(unscored))
    print(format_scores(rows))
    return 0
