"""Raven selection tables (docs/contracts.md §3): write detections, read tables back."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from pamlive.array.offline import bearing_of
from pamlive.calls.call import Call
from pamlive.detection import Detection

COLUMNS = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
           "High Freq (Hz)", "Class", "Score"]
EXTRA_COLUMNS = ["Channels", "Begin Sample", "End Sample", "Windows"]
BEARING_COLUMNS = ["Bearing (deg)", "Bearing Uncertainty (deg)", "Bearing Reference",
                   "Ambiguous", "Bearing Candidates (deg)", "Cone Angle (deg)"]
# an event model's table: one row per call, its own box; Class is the species and Score
# its probability (class_prob), beside the detection probability of the call
CALL_COLUMNS = ["Det Prob"]
TABLE_SUFFIX = ".selections.txt"
# one row per merged detection, or Raven's multichannel convention: one row per channel
# the detection was heard on, all rows of a detection sharing its Selection number
ROW_MODES = ("detection", "channel")


def table_paths(outdir: Path, audio_paths: Sequence[Path]) -> dict[Path, Path]:
    """One table per input, never two on one name: ``<stem>.selections.txt`` where the stem
    is unique among the inputs; inputs sharing a stem (``a/x.wav``, ``b/x.wav``) are named
    by their path below the folder they share, ``/`` as ``__`` (``a__x.selections.txt``),
    keeping the audio suffix where only that differs (``x.wav.selections.txt``)."""
    stems = Counter(p.stem for p in audio_paths)
    names = {p: p.stem for p in audio_paths}
    shared = [p for p in audio_paths if stems[p.stem] > 1]
    if shared:
        resolved = {p: p.resolve() for p in shared}
        root = Path(os.path.commonpath([r.parent for r in resolved.values()]))
        rel = {p: r.relative_to(root) for p, r in resolved.items()}
        names.update({p: "__".join((*r.parent.parts, r.stem)) for p, r in rel.items()})
        again = Counter(names[p] for p in shared)
        names.update({p: "__".join(r.parts) for p, r in rel.items() if again[names[p]] > 1})
    used: set[str] = set()
    for p in audio_paths:  # a name made above may still meet a real stem: number it
        name, n = names[p], 1
        while name in used:
            n += 1
            name = f"{names[p]}-{n}"
        used.add(name)
        names[p] = name
    return {p: outdir / f"{name}{TABLE_SUFFIX}" for p, name in names.items()}


def write_selection_table(path: Path, detections: Sequence[Detection],
                          rows: str = "detection", *, bearings: bool = False) -> None:
    """One row per detection (``rows="channel"``: per channel of it), times in seconds from
    the start of the input file; ``bearings``: the array's columns too
    (``docs/array.md``), after all the others."""
    if rows not in ROW_MODES:
        raise ValueError(f"rows must be one of {ROW_MODES}, got {rows!r}")
    _write_whole(path, lambda tmp: _write_rows(tmp, detections, per_channel=rows == "channel",
                                               bearings=bearings))


def write_call_table(path: Path, calls: Sequence[Call]) -> None:
    """One row per call (an event model's output), in time order: its channel, its own
    time-frequency box, species (Class), class probability (Score) and detection
    probability, times in seconds from the start of the input file."""
    _write_whole(path, lambda tmp: _write_calls(tmp, calls))


def _write_whole(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        write(tmp)
    except BaseException:  # Ctrl-C or a full disk: no partial table is left behind
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def _write_calls(tmp: Path, calls: Sequence[Call]) -> None:
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS + CALL_COLUMNS)
        ordered = sorted(calls, key=lambda c: (c.start_s, c.channel, c.low_hz))
        for i, c in enumerate(ordered, start=1):
            writer.writerow([
                i, "Spectrogram 1", c.channel + 1, f"{c.start_s:.4f}", f"{c.end_s:.4f}",
                _freq(c.low_hz), _freq(c.high_hz), c.species, f"{c.class_prob:.4f}",
                f"{c.det_prob:.4f}",
            ])


def _write_rows(tmp: Path, detections: Sequence[Detection], per_channel: bool,
                bearings: bool) -> None:
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS + EXTRA_COLUMNS + (BEARING_COLUMNS if bearings else []))
        ordered = sorted(detections, key=lambda d: (d.start_sample, d.class_name))
        for i, d in enumerate(ordered, start=1):
            for channel in sorted(d.channels) if per_channel else [d.best_channel]:
                writer.writerow([
                    i, "Spectrogram 1", channel + 1, f"{d.start_s:.4f}", f"{d.end_s:.4f}",
                    _freq(d.low_freq), _freq(d.high_freq), d.class_name, f"{d.score:.4f}",
                    ",".join(str(c + 1) for c in d.channels), d.start_sample, d.end_sample,
                    d.n_windows, *(_bearing_cells(d) if bearings else []),
                ])


def _bearing_cells(d: Detection) -> list[str]:
    result = bearing_of(d)
    fields = result.fields() if result is not None else {}
    if "bearing_deg" not in fields:
        return [""] * len(BEARING_COLUMNS)
    return [f"{fields['bearing_deg']:.1f}", f"{fields['bearing_uncertainty_deg']:.1f}",
            fields["bearing_reference"], "yes" if fields.get("ambiguous") else "no",
            ",".join(f"{c:.1f}" for c in fields.get("bearing_candidates_deg", [])),
            f"{fields['cone_deg']:.1f}" if "cone_deg" in fields else ""]


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
