"""Raw archive: continuous FLAC files per N minutes, within a disk budget.

The processing thread hands blocks to :meth:`RawArchive.submit` (never blocks; a full
queue drops the block and counts it); a writer thread encodes them. Files roll over on
UTC multiples of ``segment_minutes`` and at every gap in the sample clock, and are named
by the UTC time of their first sample (``raw_20260301T120000_000Z.flac``), so each name
tells the truth about its content.

The budget (``max_gb`` for archive + clips, ``min_free_percent`` of the filesystem) is
enforced by deleting the oldest archive files first, then clips older than
``keep_clips_days``; younger clips are never deleted. When that is not enough, or a write
fails (ENOSPC), archiving stops with the health flag ``archive.disk_full`` while
detection and alerts go on; it resumes by itself once space is back.
"""

from __future__ import annotations

import logging
import math
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf

from pamlive.clock import utc_at_sample
from pamlive.config import ArchiveSettings
from pamlive.field.health_alerts import HealthAlerts
from pamlive.private import create_private_file, make_private_dir
from pamlive.utc import file_stamp

log = logging.getLogger(__name__)

PREFIX = "raw_"
CLIP_SUFFIXES = {".flac", ".wav", ".png"}


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


class RawArchive:
    """Writer thread + budget keeper for one input stream."""

    def __init__(
        self,
        directory: Path,
        clips_directory: Path | None,
        sample_rate: int,
        channels: int,
        utc_at: datetime | Callable[[int], datetime],
        settings: ArchiveSettings,
        disk_usage: Callable[[Path], Any] = shutil.disk_usage,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.clips_directory = clips_directory
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        if isinstance(utc_at, datetime):  # a nominal clock from this start
            start = utc_at
            self._utc_at: Callable[[int], datetime] = (
                lambda sample: utc_at_sample(start, sample, self.sample_rate))
        else:
            self._utc_at = utc_at  # e.g. SampleClock.utc: re-anchored, slewed
        self.settings = settings
        self._disk_usage = disk_usage
        self._clock = clock
        self._queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(settings.queue_blocks)
        self.alerts = HealthAlerts()
        self._file: sf.SoundFile | None = None
        self._file_path: Path | None = None
        self._next_sample = -1  # sample expected next in the open file
        self._boundary = -1  # first sample of the next segment
        self._next_check = 0.0
        self.stopped_reason: str | None = None
        self.dropped_blocks = 0
        self.files_written = 0
        self.samples_written = 0
        self.deleted_files = 0
        self.deleted_bytes = 0
        make_private_dir(self.directory)
        self._thread = threading.Thread(target=self._run, name="pamlive-archive", daemon=True)
        self._thread.start()

    # -- producer side ---------------------------------------------------------------------

    def submit(self, block: np.ndarray, start_sample: int) -> bool:
        """Queue ``block`` (frames, channels; not mutated afterwards). False if dropped."""
        try:
            self._queue.put_nowait((start_sample, block))
        except queue.Full:
            self.dropped_blocks += 1
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the open file, stop the thread."""
        self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    @property
    def flags(self) -> list[str]:
        """Health flags: ``archive.disk_full`` while stopped; ``archive.drops`` after drops."""
        flags = ["archive.disk_full"] if self.stopped_reason else []
        return flags + (["archive.drops"] if self.dropped_blocks else [])

    def stats(self) -> dict[str, Any]:
        return {
            "recording": self.stopped_reason is None,
            "stopped_reason": self.stopped_reason,
            "files": self.files_written,
            "seconds": self.samples_written / self.sample_rate,
            "dropped_blocks": self.dropped_blocks,
            "queue_fill": self._queue.qsize() / self.settings.queue_blocks,
            "deleted_files": self.deleted_files,
            "deleted_bytes": self.deleted_bytes,
        }

    def drain_events(self) -> list[tuple[str, str]]:
        """``(alert class, message)`` pairs since the last call."""
        return self.alerts.drain()

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._close_file()
                return
            now = self._clock()
            if now >= self._next_check:
                self._check_budget(now)
            if self.stopped_reason is None:
                self._write(*item)

    def _write(self, start_sample: int, block: np.ndarray) -> None:
        data = np.clip(block, -1.0, 1.0)
        while data.shape[0] and self.stopped_reason is None:
            if self._file is None or start_sample != self._next_sample:
                self._open(start_sample)
            take = min(data.shape[0], self._boundary - start_sample)
            try:
                self._file.write(data[:take])  # type: ignore[union-attr]
            except (OSError, RuntimeError, AssertionError) as exc:
                # libsndfile reports ENOSPC as "System error." (a RuntimeError); soundfile
                # asserts on a short write
                self._stop(f"write failed: {exc or type(exc).__name__}")
                return
            self.samples_written += take
            start_sample += take
            self._next_sample = start_sample
            data = data[take:]
            if start_sample >= self._boundary:
                self._close_file()

    def _open(self, start_sample: int) -> None:
        self._close_file()
        segment_s = self.settings.segment_minutes * 60.0
        start_utc = self._utc_at(start_sample)
        next_boundary = (math.floor(start_utc.timestamp() / segment_s) + 1) * segment_s
        offset_s = next_boundary - start_utc.timestamp()
        self._boundary = start_sample + max(1, math.ceil(offset_s * self.sample_rate - 1e-6))
        name = f"{PREFIX}{file_stamp(start_utc)}.flac"
        self._file_path = self.directory / name
        try:
            create_private_file(self._file_path)
            self._file = sf.SoundFile(self._file_path, "w", self.sample_rate, self.channels,
                                      subtype=f"PCM_{self.settings.bits}", format="FLAC")
        except (OSError, RuntimeError) as exc:
            self._stop(f"cannot create {name}: {exc}")
            return
        self._next_sample = start_sample
        self.files_written += 1

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, RuntimeError) as exc:
                log.error("archive: closing %s failed: %s", self._file_path, exc)
            self._file = None
            self._file_path = None

    def _stop(self, reason: str) -> None:
        self._close_file()
        self.stopped_reason = reason
        self.alerts.add("archive.disk_full", f"raw archive stopped: {reason}")
        log.error("archive stopped: %s", reason)

    # -- budget ----------------------------------------------------------------------------

    def _check_budget(self, now: float) -> None:
        ok = self.enforce_budget(now)
        if ok and self.stopped_reason is not None:
            self.stopped_reason = None
            self.alerts.add("archive.resumed", "raw archive resumed: disk space is back")
            log.warning("archive resumed")
        elif not ok and self.stopped_reason is None:
            self._stop("disk budget exhausted (all deletable files deleted)")
        self._next_check = now + (self.settings.check_s if self.stopped_reason is None
                                  else self.settings.recheck_s)

    def enforce_budget(self, now: float) -> bool:
        """Delete oldest archive files, then expired clips, until within budget.

        True when the budget holds afterwards. Only called from the writer thread (and
        tests); never deletes the open file or a clip younger than ``keep_clips_days``.
        """
        candidates = self._deletable(now)
        budgeted_bytes = sum(p.stat().st_size for p in self._budgeted_files())
        while True:
            over = self._over_budget(budgeted_bytes)
            if not over:
                return True
            if not candidates:
                return False
            victim = candidates.popleft()
            try:
                size = victim.stat().st_size
                victim.unlink()
            except FileNotFoundError:
                continue
            budgeted_bytes -= size
            self.deleted_files += 1
            self.deleted_bytes += size
            log.info("archive budget: deleted %s (%d bytes)", victim.name, size)

    def _over_budget(self, budgeted_bytes: int) -> bool:
        s = self.settings
        if s.max_gb is not None and budgeted_bytes > s.max_gb * 1e9:
            return True
        usage = self._disk_usage(self.directory)
        return usage.free * 100.0 < s.min_free_percent * usage.total

    def _budgeted_files(self) -> list[Path]:
        return self._archive_files() + self._clip_files()

    def _archive_files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{PREFIX}*.flac"))  # names sort by start time

    def _clip_files(self) -> list[Path]:
        if self.clips_directory is None or not self.clips_directory.is_dir():
            return []
        return [p for p in self.clips_directory.iterdir()
                if p.is_file() and p.suffix in CLIP_SUFFIXES and not p.name.startswith(".")]

    def _deletable(self, now: float) -> deque[Path]:
        closed = [p for p in self._archive_files() if p != self._file_path]
        cutoff = now - self.settings.keep_clips_days * 86400.0
        expired = sorted((p for p in self._clip_files() if p.stat().st_mtime < cutoff),
                         key=lambda p: p.stat().st_mtime)
        return deque(closed + expired)
