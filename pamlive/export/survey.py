"""What an archive needs from a survey, read from the detection log or from analyze's
Raven tables: the detections in UTC and the span the monitor listened (its effort).

Both sources end in one :class:`Survey`, so the Tethys writer knows nothing of SQLite
or tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pamlive.alerts.log import read_all, read_runs
from pamlive.alerts.schema import DETECTION_SCHEMA, VALIDATION_SCHEMA
from pamlive.errors import PamliveError
from pamlive.evaluate import stem_of
from pamlive.raven import TABLE_SUFFIX, read_selection_table
from pamlive.sources.files import expand_inputs, open_audio, start_time_from_name
from pamlive.utc import parse_utc


@dataclass(frozen=True)
class Record:
    """One detection to archive."""

    start: datetime
    end: datetime
    class_name: str
    score: float
    event: str  # what names it at its source: the detection id, or table and selection
    input_file: str | None = None
    bearing_deg: float | None = None
    verdict: Mapping[str, Any] | None = None  # the operator's latest (validation body)


@dataclass(frozen=True)
class Survey:
    """The detections and the effort span (UTC) that holds them all."""

    records: list[Record]
    start: datetime
    end: datetime
    models: frozenset[tuple[str, str]]  # (name, version) named by the source; may be empty
    stations: frozenset[str] = frozenset()  # the stations the log's runs name
    judged: bool = False  # the source keeps operators' verdicts (a log; tables do not)


def from_log(path: Path) -> Survey:
    """Detections of a durable detection log, each with the operator's latest verdict;
    effort from its runs' starts and ends (a run without an end reaches its last
    detection)."""
    try:
        bodies = read_all(path, kinds=("detection", "bearing", "validation"))
        runs = read_runs(path)
    except sqlite3.Error as exc:
        raise PamliveError(f"detection log {path}: cannot read ({exc})") from None
    bearings = {_key(b): b["bearing_deg"] for b in bodies
                if b.get("schema") == "pamlive.bearing/1" and "bearing_deg" in b}
    verdicts = {b["detection_id"]: b for b in bodies if b.get("schema") == VALIDATION_SCHEMA}
    records = [_record(b, bearings, verdicts) for b in bodies
               if b.get("schema") == DETECTION_SCHEMA]
    if not records:
        raise PamliveError(f"detection log {path} holds no detections: nothing to archive")
    starts = [_utc(r.started_epoch) for r in runs] + [r.start for r in records]
    ends = [_utc(r.ended_epoch) for r in runs if r.ended_epoch is not None]
    models = frozenset((b["model"]["name"], b["model"]["version"]) for b in bodies
                       if "model" in b)
    return Survey(records, min(starts), max([*ends, *(r.end for r in records)]), models,
                  frozenset(r.station for r in runs), judged=True)


def _key(body: dict[str, Any]) -> tuple[str, str, int]:
    return body["run_id"], body["class"], body["start_sample"]


def _record(body: dict[str, Any], bearings: dict[tuple[str, str, int], float],
            verdicts: Mapping[str, Mapping[str, Any]]) -> Record:
    bearing = body.get("bearing_deg", bearings.get(_key(body)))
    return Record(parse_utc(body["start_utc"]), parse_utc(body["end_utc"]), body["class"],
                  float(body["score"]), str(body.get("id", f"{body['run_id']}:{body['seq']}")),
                  bearing_deg=None if bearing is None else float(bearing),
                  verdict=verdicts.get(body.get("id", "")))


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def from_raven(tables: Sequence[Path], audio: Sequence[Path]) -> Survey:
    """Detections of analyze's Raven tables, placed in UTC by their audio files' names
    (which must carry the start time, as recorders write it); effort: the files' spans."""
    files = {f.stem: f for f in expand_inputs(audio)}
    records: list[Record] = []
    spans: list[tuple[datetime, datetime]] = []
    for table in _tables(tables):
        stem = stem_of(table)
        if stem not in files:
            raise PamliveError(f"{table}: no audio file {stem}.* among --audio: give the "
                               "recording it was made from (its name holds its start time)")
        start = start_time_from_name(files[stem])
        if start is None:
            raise PamliveError(f"{files[stem]}: no start time in its name, so its detections "
                               "cannot be placed in UTC (name it like x_20260101T120000.wav)")
        spans.append((start, start + timedelta(seconds=open_audio(files[stem]).duration_s)))
        records += _table_records(table, start, files[stem].name)
    if not records:
        raise PamliveError("the Raven tables hold no detections: nothing to archive")
    return Survey(sorted(records, key=lambda r: (r.start, r.class_name)),
                  min(s for s, _ in spans), max(e for _, e in spans), frozenset())


def _tables(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(p.glob("*" + TABLE_SUFFIX))
        elif p.is_file():
            found.append(p)
        else:
            raise PamliveError(f"{p}: no such Raven table or folder")
    if not found:
        raise PamliveError(f"no Raven tables (*{TABLE_SUFFIX}) in {', '.join(map(str, paths))}")
    return found


def _table_records(table: Path, start: datetime, input_file: str) -> list[Record]:
    """One record per selection (a table with a row per channel repeats each selection)."""
    try:
        rows = read_selection_table(table)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PamliveError(f"cannot read Raven table {table}: {exc}") from None
    seen: dict[str, Record] = {}
    for line, row in enumerate(rows, start=2):
        try:
            bearing = row.get("Bearing (deg)") or None
            seen.setdefault(row["Selection"], Record(
                start + timedelta(seconds=float(row["Begin Time (s)"])),
                start + timedelta(seconds=float(row["End Time (s)"])),
                row["Class"], float(row["Score"]), f"{table.name}:{row['Selection']}",
                input_file, None if bearing is None else float(bearing)))
        except (TypeError, ValueError):
            raise PamliveError(f"{table}, line {line}: times/score are not numbers") from None
    return list(seen.values())
