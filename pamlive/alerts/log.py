"""Durable detection log: SQLite in WAL mode, ``synchronous=FULL``.

Every detection is committed (fsync'd) before it is sent on the bus, so a crash (kill -9,
power loss) never loses a detection a subscriber has seen, and SQLite's journal keeps the
file consistent. The log spans monitor runs: runs get an increasing ordinal at start, and
detections are ordered by ``(run ordinal, seq)``, which is what replay walks.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pamlive.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    ord INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    station TEXT NOT NULL,
    started_epoch REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS detections (
    run_ord INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    start_epoch REAL NOT NULL,
    logged_epoch REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_ord, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS detections_by_start ON detections (start_epoch);
CREATE INDEX IF NOT EXISTS detections_by_logged ON detections (logged_epoch);
"""

MAX_PAGE = 1000


@dataclass(frozen=True)
class LoggedDetection:
    """One row ready to write: the body is already the exact JSON text sent on the bus."""

    seq: int
    start_epoch: float
    body_json: str


class UnknownRunError(LookupError):
    """A replay bound names a run the log does not hold (other monitor, or pruned)."""


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            if not path.is_file():
                raise OSError("no such file")
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        conn.execute("PRAGMA busy_timeout=5000")
    except (sqlite3.Error, OSError) as e:
        raise ConfigError(f"detection log {path}: cannot open ({e})") from e
    return conn


class DetectionLog:
    """The writer side, owned by the bus's publisher thread (one writer per log file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path, readonly=False)
        self._run_ord: int | None = None

    def start_run(self, run_id: str, station: str) -> None:
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO runs (run_id, station, started_epoch) VALUES (?, ?, ?)",
                (run_id, station, time.time()),
            )
        self._run_ord = cur.lastrowid

    def append(self, rows: Iterable[LoggedDetection]) -> None:
        """Write a batch in one transaction: one fsync however many detections it holds."""
        if self._run_ord is None:
            raise RuntimeError("DetectionLog.start_run must be called before append")
        now = time.time()
        params = [(self._run_ord, r.seq, r.start_epoch, now, r.body_json) for r in rows]
        with self._conn:
            self._conn.executemany(
                "INSERT INTO detections (run_ord, seq, start_epoch, logged_epoch, body)"
                " VALUES (?, ?, ?, ?, ?)",
                params,
            )

    def prune(self, retention_days: float) -> int:
        """Delete detections logged more than ``retention_days`` ago; returns rows deleted."""
        cutoff = time.time() - retention_days * 86400.0
        with self._conn:
            n = self._conn.execute(
                "DELETE FROM detections WHERE logged_epoch < ?", (cutoff,)
            ).rowcount
            self._conn.execute(
                "DELETE FROM runs WHERE ord != ? AND started_epoch < ?"
                " AND ord NOT IN (SELECT DISTINCT run_ord FROM detections)",
                (self._run_ord, cutoff),
            )
        return n

    def close(self) -> None:
        self._conn.close()


class LogReader:
    """The read side for replay; WAL lets it read while the publisher writes."""

    def __init__(self, path: Path) -> None:
        self._conn = _connect(Path(path), readonly=True)

    def _ord(self, run_id: str) -> int:
        row = self._conn.execute("SELECT ord FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRunError(run_id)
        return row[0]

    def query(
        self,
        *,
        after: tuple[str, int] | None = None,
        until: tuple[str, int] | None = None,
        since_epoch: float | None = None,
        limit: int = MAX_PAGE,
    ) -> tuple[list[str], bool]:
        """Detection bodies (JSON text) in log order, and whether more rows follow.

        ``after``/``until`` are exclusive ``(run_id, seq)`` bounds; ``since_epoch`` keeps
        detections that started at or after that UTC time (sample clock).
        """
        where: list[str] = []
        args: list[str | int | float] = []
        if after is not None:
            ord_ = self._ord(after[0])
            where.append("(run_ord > ? OR (run_ord = ? AND seq > ?))")
            args += [ord_, ord_, after[1]]
        if until is not None:
            ord_ = self._ord(until[0])
            where.append("(run_ord < ? OR (run_ord = ? AND seq < ?))")
            args += [ord_, ord_, until[1]]
        if since_epoch is not None:
            where.append("start_epoch >= ?")
            args.append(since_epoch)
        sql = "SELECT body FROM detections"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY run_ord, seq LIMIT ?"
        rows = self._conn.execute(sql, [*args, limit + 1]).fetchall()
        return [r[0] for r in rows[:limit]], len(rows) > limit

    def close(self) -> None:
        self._conn.close()


def read_all(path: Path) -> list[dict]:
    """Every logged detection body, in log order (for tools and tests)."""
    reader = LogReader(path)
    try:
        bodies, _ = reader.query(limit=2**62)
    finally:
        reader.close()
    return [json.loads(b) for b in bodies]
