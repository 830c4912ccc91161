"""The combined detection store and the resume manifest, in one SQLite file.

SQLite rather than Parquet: it ships with Python (no extra dependency on a field
laptop), takes one transaction per finished input (a table, its detections and its
manifest row land together or not at all, so Ctrl-C or a crash never leaves half a
file), and any tool reads it (``sqlite3``, pandas ``read_sql``, Raven via the tables).
Only the client writes it; workers never touch it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pamlive import __version__
from pamlive.detection import Detection

SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (
    path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    model TEXT NOT NULL, config_hash TEXT NOT NULL,
    table_path TEXT, detections INTEGER NOT NULL, error TEXT,
    pamlive_version TEXT NOT NULL, completed_utc TEXT NOT NULL,
    PRIMARY KEY (path, model, config_hash)
);
CREATE TABLE IF NOT EXISTS detections (
    path TEXT NOT NULL, model TEXT NOT NULL, config_hash TEXT NOT NULL,
    channel INTEGER NOT NULL, channels TEXT NOT NULL, class TEXT NOT NULL,
    score REAL NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,
    start_sample INTEGER NOT NULL, end_sample INTEGER NOT NULL, sample_rate INTEGER NOT NULL,
    low_freq REAL, high_freq REAL, n_windows INTEGER NOT NULL,
    model_version TEXT NOT NULL, pamlive_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS detections_by_input ON detections (path, model, config_hash);
"""


@dataclass(frozen=True)
class InputKey:
    """What makes a finished input still valid: the same bytes, model and settings."""

    path: str
    size: int
    mtime_ns: int
    model: str  # name@version
    config_hash: str

    @classmethod
    def of(cls, path: Path, model: str, config_hash: str) -> InputKey:
        st = path.stat()
        return cls(str(path.resolve()), st.st_size, st.st_mtime_ns, model, config_hash)


def config_hash(settings: dict[str, Any]) -> str:
    """A short, stable digest of every setting that changes results."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ResultStore:
    """``inputs`` (the manifest) and ``detections`` (every detection with provenance)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path))
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def is_complete(self, key: InputKey) -> bool:
        row = self._db.execute(
            "SELECT size, mtime_ns, table_path, error FROM inputs "
            "WHERE path = ? AND model = ? AND config_hash = ?",
            (key.path, key.model, key.config_hash)).fetchone()
        if row is None or row[3] is not None:
            return False
        size, mtime_ns, table, _ = row
        return size == key.size and mtime_ns == key.mtime_ns and bool(table) \
            and Path(table).is_file()

    def record(self, key: InputKey, model_version: str, table: Path | None,
               detections: Sequence[Detection], error: str | None) -> None:
        """Replace everything known about ``key``'s input in one transaction."""
        where = (key.path, key.model, key.config_hash)
        rows = [(key.path, key.model, key.config_hash, d.best_channel + 1,
                 ",".join(str(c + 1) for c in d.channels), d.class_name, d.score, d.start_s,
                 d.end_s, d.start_sample, d.end_sample, d.sample_rate, d.low_freq, d.high_freq,
                 d.n_windows, model_version, __version__) for d in detections]
        with self._db:
            self._db.execute("DELETE FROM detections WHERE path = ? AND model = ? "
                             "AND config_hash = ?", where)
            self._db.executemany(
                "INSERT INTO detections VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            self._db.execute(
                "INSERT OR REPLACE INTO inputs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (key.path, key.size, key.mtime_ns, key.model, key.config_hash,
                 str(table) if table else None, len(detections), error, __version__,
                 datetime.now(UTC).isoformat(timespec="seconds")))

    def detections(self, path: Path | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (for reports and tests)."""
        cur = self._db.execute(
            "SELECT * FROM detections" + (" WHERE path = ?" if path else "")
            + " ORDER BY path, start_sample, class", (str(path.resolve()),) if path else ())
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
