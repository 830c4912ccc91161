"""Durable detection log: SQLite in WAL mode, ``synchronous=FULL``.

Every detection is committed (fsync'd) before it is sent on the bus, so a crash (kill -9,
power loss) never loses a detection a subscriber has seen, and SQLite's journal keeps the
file consistent. The log spans monitor runs: runs get an increasing ordinal at start, and
detections are ordered by ``(run ordinal, seq)``, which is what replay walks.

Onsets (the early alert as a detection opens) are logged the same way, in a table of
their own, so the ``detections`` table still holds detections only; so are an event
model's calls and their per-minute summaries (``calls``, ``call_summaries``) and an
array's bearings (``bearings``). Opening a log from before a kind adds its table; a
reader of a log no writer of this version has opened finds none of that kind.

A write that fails (disk full, I/O error) never stops publication: the rows stay in a
bounded in-memory backlog that replay still serves and that the next write retries first;
the log raises a health flag and an alert event (``log.disk_full`` / ``log.write_failed``)
and counts every message that is not on disk.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pamlive.alerts import runs
from pamlive.errors import ConfigError
from pamlive.private import create_private_file, make_private_dir

_log = logging.getLogger(__name__)

# message kind -> its table; an array's bearings, an event model's calls and per-minute
# summaries have their own
TABLES = {"detection": "detections", "onset": "onsets", "call": "calls",
          "call_summary": "call_summaries", "bearing": "bearings",
          "validation": "validations"}  # an operator's verdicts: the history of each

_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    ord INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    station TEXT NOT NULL,
    started_epoch REAL NOT NULL,
    ended_epoch REAL,
    stop_reason TEXT
);
"""
# one table per message kind, all of one layout
_MESSAGES = """
CREATE TABLE IF NOT EXISTS {table} (
    run_ord INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    start_epoch REAL NOT NULL,
    logged_epoch REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_ord, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {table}_by_start ON {table} (start_epoch);
CREATE INDEX IF NOT EXISTS {table}_by_logged ON {table} (logged_epoch);
"""
_SCHEMA = _RUNS + "".join(_MESSAGES.format(table=t) for t in TABLES.values())
# a verdict names its detection by id: found by index, not by a scan of the whole log
_SCHEMA += ("CREATE INDEX IF NOT EXISTS detections_by_id"
            " ON detections (json_extract(body, '$.id'));")

_RUN_ORDS = " UNION ".join(f"SELECT run_ord FROM {t}" for t in TABLES.values())

MAX_PAGE = 1000
MAX_BACKLOG = 10_000  # unlogged messages kept in memory (~1 KB each) while writes fail

# (run ordinal, seq, start epoch, body, kind) of a message not yet on disk
BacklogRow = tuple[int, int, float, str, str]


@dataclass(frozen=True)
class LoggedDetection:
    """One row ready to write: the body is already the exact JSON text sent on the bus."""

    seq: int
    start_epoch: float
    body_json: str
    kind: str = "detection"  # a key of TABLES


@dataclass(frozen=True)
class LogState:
    """What health and the stop summary say about the log."""

    rows: int = 0  # detections written this run
    unlogged: int = 0  # detections published but not on disk (backlog + lost)
    lost: int = 0  # of those, pushed out of the full backlog: not replayable either
    problem: str | None = None  # ``log.disk_full`` or ``log.write_failed`` while failing
    error: str | None = None  # the last write error while writes fail

    @property
    def flags(self) -> list[str]:
        """Health flags: the problem while writes fail, ``log.unlogged`` once any row was."""
        return ([self.problem] if self.problem else []) + (["log.unlogged"] if self.unlogged
                                                            else [])


class UnknownRunError(LookupError):
    """A replay bound names a run the log does not hold (other monitor, or pruned)."""


def _disk_full(exc: Exception) -> bool:
    return (getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or getattr(exc, "errno", None) == errno.ENOSPC)


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            if not path.is_file():
                raise OSError("no such file")
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
        else:
            make_private_dir(path.parent)
            create_private_file(path, empty=False)  # its -wal and -shm take its mode
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            runs.migrate(conn)
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
        self._lock = threading.Lock()  # the backlog is read by the replay thread
        self._backlog: deque[BacklogRow] = deque()
        self._rows = 0
        self._lost = 0
        self._problem: str | None = None
        self._error: str | None = None
        self._events: deque[tuple[str, str]] = deque(maxlen=64)
        self._unsettled: list[runs.UncleanRun] = []  # marked unclean with the next write

    def start_run(self, run_id: str, station: str) -> list[runs.UncleanRun]:
        """Register this run; return the earlier runs that recorded no end (they died),
        with the onsets each left open. They are marked ``unclean`` in the transaction of
        the next write, the one that logs the detections closing those onsets (at once
        if none is open), so a death in between leaves them to be found again."""
        try:
            with self._conn:
                cur = self._conn.execute(
                    "INSERT INTO runs (run_id, station, started_epoch) VALUES (?, ?, ?)",
                    (run_id, station, time.time()),
                )
        except (sqlite3.Error, OSError) as exc:
            why = "the disk is full" if _disk_full(exc) else str(exc)
            raise ConfigError(f"detection log {self.path}: {why}: cannot record this run "
                              "(the monitor does not start without its durable log)") from exc
        self._run_ord = cur.lastrowid
        assert self._run_ord is not None  # an INSERT always has one
        found = runs.unclean_runs(self._conn, self._run_ord, TABLES.values())
        self._unsettled = list(found)
        if not any(run.open_onsets for run in found):
            self.append([])
        return found

    def end_run(self, reason: str | None) -> None:
        """Record this run's clean end (its last write); failing, the next start will take
        it for a run that died."""
        if self._run_ord is None:
            return
        try:
            with self._conn:
                runs.mark_ended(self._conn, self._run_ord, reason, time.time())
        except (sqlite3.Error, OSError) as exc:
            _log.warning("detection log %s: cannot record the end of this run (%s)",
                         self.path, exc)

    def append(self, rows: Iterable[LoggedDetection]) -> bool:
        """Write the backlog and a batch in one transaction (one fsync); False if it failed.

        A failed batch is kept in memory (the oldest rows beyond ``MAX_BACKLOG`` are counted
        as lost) and written first by the next call that succeeds.
        """
        if self._run_ord is None:
            raise RuntimeError("DetectionLog.start_run must be called before append")
        with self._lock:
            self._backlog.extend((self._run_ord, r.seq, r.start_epoch, r.body_json, r.kind)
                                 for r in rows)
            while len(self._backlog) > MAX_BACKLOG:
                self._backlog.popleft()
                self._lost += 1
            held = list(self._backlog)
        if not held and not self._unsettled:
            return True
        now = time.time()
        params: dict[str, list[tuple]] = {}
        for run_ord, seq, start, body, kind in held:
            params.setdefault(TABLES[kind], []).append((run_ord, seq, start, now, body))
        try:
            with self._conn:
                for table, values in params.items():
                    self._conn.executemany(
                        f"INSERT INTO {table} (run_ord, seq, start_epoch, logged_epoch, body)"
                        " VALUES (?, ?, ?, ?, ?)",
                        values,
                    )
                for run in self._unsettled:
                    runs.mark_ended(self._conn, run.ord, runs.UNCLEAN, run.last_logged_epoch)
        except (sqlite3.Error, OSError) as exc:
            if self._problem is None:
                self._problem = "log.disk_full" if _disk_full(exc) else "log.write_failed"
                self._events.append((self._problem,
                                     f"detection log {self.path}: write failed ({exc}); "
                                     "detections are published and kept in memory"))
            self._error = str(exc)
            return False
        self._unsettled = []
        with self._lock:
            for _ in held:
                self._backlog.popleft()
            self._rows += len(held)
        if self._problem is not None:
            self._events.append(("log.resumed", f"detection log {self.path}: writing again, "
                                                f"{len(held)} held message(s) logged"))
            self._problem = self._error = None
        return True

    def backlog(self) -> list[BacklogRow]:
        """A snapshot of the unlogged rows, oldest first (any thread)."""
        with self._lock:
            return list(self._backlog)

    def state(self) -> LogState:
        with self._lock:
            pending = len(self._backlog)
        return LogState(self._rows, pending + self._lost, self._lost, self._problem,
                        self._error)

    def drain_events(self) -> list[tuple[str, str]]:
        """``(alert class, message)`` pairs since the last call: failure and recovery."""
        events = list(self._events)
        self._events.clear()
        return events

    def prune(self, retention_days: float) -> int:
        """Delete messages (every kind) logged more than ``retention_days`` ago; returns
        rows deleted."""
        cutoff = time.time() - retention_days * 86400.0
        with self._conn:
            n = sum(self._conn.execute(f"DELETE FROM {table} WHERE logged_epoch < ?",
                                       (cutoff,)).rowcount for table in TABLES.values())
            self._conn.execute(
                "DELETE FROM runs WHERE ord != ? AND started_epoch < ?"
                " AND ord NOT IN (" + _RUN_ORDS + ")",
                (self._run_ord, cutoff),
            )
        return n

    def close(self) -> None:
        """Try the backlog once more (space may be back), then close."""
        if self._backlog:
            self.append([])
        self._conn.close()


class LogReader:
    """The read side for replay; WAL lets it read while the publisher writes.

    ``backlog`` gives the writer's unlogged rows, served after the logged ones (they are
    the newest: a successful write always empties the backlog first).
    """

    def __init__(self, path: Path,
                 backlog: Callable[[], list[BacklogRow]] | None = None) -> None:
        self._conn = _connect(Path(path), readonly=True)
        self._backlog = backlog

    def _tables(self) -> set[str]:
        """The message tables this log has (an older log lacks the newer kinds')."""
        return {name for (name,) in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

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
        kinds: tuple[str, ...] = ("detection",),
    ) -> tuple[list[str], bool]:
        """Bodies (JSON text) of the ``kinds`` asked for, in log order, and whether more
        rows follow.

        ``after``/``until`` are exclusive ``(run_id, seq)`` bounds; ``since_epoch`` keeps
        messages that started at or after that UTC time (sample clock).
        """
        where: list[str] = []
        args: list[str | int | float] = []
        low = high = None
        if after is not None:
            low = (self._ord(after[0]), after[1])
            where.append("(run_ord > ? OR (run_ord = ? AND seq > ?))")
            args += [low[0], low[0], low[1]]
        if until is not None:
            high = (self._ord(until[0]), until[1])
            where.append("(run_ord < ? OR (run_ord = ? AND seq < ?))")
            args += [high[0], high[0], high[1]]
        if since_epoch is not None:
            where.append("start_epoch >= ?")
            args.append(since_epoch)
        # the writer's held rows, taken before the query: a row it commits meanwhile is then
        # in one or both (both: kept once), never in neither
        held = self._backlog() if self._backlog is not None else []
        condition = " WHERE " + " AND ".join(where) if where else ""
        present = self._tables()
        tables = [TABLES[k] for k in kinds if TABLES[k] in present]
        rows: list[tuple[tuple[int, int], str]] = []
        if tables:
            sql = " UNION ALL ".join(f"SELECT run_ord, seq, body FROM {t}{condition}"
                                     for t in tables)
            rows = [((o, q), b) for o, q, b in self._conn.execute(
                sql + " ORDER BY run_ord, seq LIMIT ?", [*(args * len(tables)), limit + 1])]
        if len(rows) <= limit and held:
            logged = {key for key, _ in rows}
            rows = sorted(rows + [((o, q), b) for o, q, start, b, kind in held
                                  if kind in kinds and (o, q) not in logged
                                  and (low is None or (o, q) > low)
                                  and (high is None or (o, q) < high)
                                  and (since_epoch is None or start >= since_epoch)])
        return [b for _, b in rows[:limit]], len(rows) > limit

    def find(self, kind: str, alert_id: str) -> str | None:
        """The newest body of ``kind`` whose ``id`` is ``alert_id`` (JSON text), or None:
        what a verdict is about (detections by the ``detections_by_id`` index)."""
        for row in reversed(self._backlog() if self._backlog else []):
            if row[4] == kind and json.loads(row[3]).get("id") == alert_id:
                return row[3]
        if TABLES[kind] not in self._tables():
            return None
        row = self._conn.execute(
            f"SELECT body FROM {TABLES[kind]} WHERE json_extract(body, '$.id') = ?"
            " ORDER BY run_ord DESC, seq DESC LIMIT 1", (alert_id,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._conn.close()


def read_all(path: Path, kinds: tuple[str, ...] = ("detection",)) -> list[dict]:
    """Every logged body of ``kinds``, in log order (for tools and tests)."""
    reader = LogReader(path)
    try:
        bodies, _ = reader.query(limit=2**62, kinds=kinds)
    finally:
        reader.close()
    return [json.loads(b) for b in bodies]


@dataclass(frozen=True)
class RunSpan:
    """One monitor run as the log recorded it: when it listened (for effort, archiving)."""

    run_id: str
    station: str
    started_epoch: float
    ended_epoch: float | None  # None: still running, or died before a later start found it


def read_runs(path: Path) -> list[RunSpan]:
    """Every run the log holds, oldest first (for tools: the span of effort)."""
    conn = _connect(Path(path), readonly=True)
    try:
        rows = conn.execute("SELECT run_id, station, started_epoch, ended_epoch FROM runs"
                            " ORDER BY ord").fetchall()
    except sqlite3.Error as exc:
        raise ConfigError(f"detection log {path}: cannot read its runs ({exc})") from None
    finally:
        conn.close()
    return [RunSpan(*row) for row in rows]
