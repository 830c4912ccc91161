"""Run bookkeeping in the detection log: when each run ended, and why.

A run that stops cleanly records its end (``ended_epoch``, ``stop_reason``) as its last
write. A run without one died (kill -9, power loss, a crash) and may have left onsets
open: an onset whose detection never came. The next start finds such runs, marks them
``unclean`` and closes their open onsets with an ``incomplete`` detection each
(docs/alerts.md, "Unclean stops"), so that nothing stays open forever.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pamlive.alerts.schema import DETECTION_SCHEMA

UNCLEAN = "unclean"  # the stop reason of a run found dead by a later start
UNKNOWN = "unknown"  # the stop reason of runs logged before ends were recorded
_ENVELOPE = ("run_id", "seq", "time_utc", "station")  # stamped again by the publishing bus


@dataclass(frozen=True)
class UncleanRun:
    """A run that ended without a clean stop, and the onset bodies it left open."""

    ord: int
    run_id: str
    last_logged_epoch: float | None  # its newest alert on disk; None: it logged none
    open_onsets: tuple[dict[str, Any], ...]


def migrate(conn: sqlite3.Connection) -> None:
    """Give a log from before run ends its two columns; its runs' ends are unknown (they
    did not record them), which is not the same as unclean."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    if "ended_epoch" in columns:
        return
    with conn:
        conn.execute("ALTER TABLE runs ADD COLUMN ended_epoch REAL")
        conn.execute("ALTER TABLE runs ADD COLUMN stop_reason TEXT")
        conn.execute("UPDATE runs SET ended_epoch = started_epoch, stop_reason = ?", (UNKNOWN,))


def unclean_runs(conn: sqlite3.Connection, current_ord: int,
                 tables: Iterable[str]) -> list[UncleanRun]:
    """The runs before ``current_ord`` that recorded no end, oldest first."""
    found = []
    rows = conn.execute("SELECT ord, run_id FROM runs WHERE ended_epoch IS NULL AND ord < ?"
                        " ORDER BY ord", (current_ord,)).fetchall()
    for ord_, run_id in rows:
        last = max((e for (e,) in (conn.execute(f"SELECT MAX(logged_epoch) FROM {t}"
                                                " WHERE run_ord = ?", (ord_,)).fetchone()
                                   for t in tables) if e is not None), default=None)
        closed = {i for (i,) in conn.execute(
            "SELECT json_extract(body, '$.id') FROM detections WHERE run_ord = ?", (ord_,))}
        onsets = conn.execute("SELECT json_extract(body, '$.id'), body FROM onsets"
                              " WHERE run_ord = ? ORDER BY seq", (ord_,)).fetchall()
        found.append(UncleanRun(ord_, run_id, last, tuple(
            json.loads(body) for id_, body in onsets if id_ not in closed)))
    return found


def mark_ended(conn: sqlite3.Connection, ord_: int, reason: str | None,
               epoch: float | None) -> None:
    """Record a run's end (inside the caller's transaction); ``epoch`` None: its start
    (all that is known of a run found dead that logged nothing)."""
    conn.execute("UPDATE runs SET ended_epoch = COALESCE(?, started_epoch), stop_reason = ?"
                 " WHERE ord = ?", (epoch, reason, ord_))


def closing_detection(onset: dict[str, Any]) -> dict[str, Any]:
    """The detection that closes an onset its dead run left open: the onset as it was
    (its extent and score so far, its ``id``), marked ``incomplete`` and naming the run
    whose stream its samples count in; the publishing bus stamps its own envelope."""
    body = {k: v for k, v in onset.items() if k not in _ENVELOPE}
    body.update(schema=DETECTION_SCHEMA, incomplete=True, onset_run_id=onset["run_id"])
    return body
