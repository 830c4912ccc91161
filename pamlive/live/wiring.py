"""Field components the engine wires in from the config: evidence clips, the raw
archive, GPS position, and the health sections they (and the detection log) report.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.runs import UNCLEAN
from pamlive.buffers import RingBuffer
from pamlive.config import Config, data_path
from pamlive.detection import Detection
from pamlive.errors import ConfigError
from pamlive.field.clips import ClipWorker, ClipWriter, PendingClips
from pamlive.live.capture import Capture
from pamlive.live.health import Part
from pamlive.live.observers import ArchiveFeed
from pamlive.private import make_private_dir


class Evidence:
    """Clip plans waiting for their post-roll, cut from the ring and handed to the worker."""

    def __init__(self, writer: ClipWriter, max_pending: int, ring: RingBuffer) -> None:
        self.writer = writer
        self.pending = PendingClips(max_pending)
        self.worker = ClipWorker(writer)
        self.ring = ring

    def plan(self, detection: Detection, utc: datetime) -> str | None:
        """The clip's path for the detection body, or None when too many wait (counted)."""
        job = self.writer.plan(detection, utc)
        return str(job.audio_path) if self.pending.add(job) else None

    def start(self) -> None:
        self.worker.start()

    def cut_due(self, written: int | None) -> None:
        """Clips whose post-roll has arrived (all of them at shutdown: ``written=None``,
        then waiting for room in the worker's queue rather than dropping)."""
        wait_s = 30.0 if written is None else 0.0
        for job in self.pending.pop_due(2**62 if written is None else written):
            # read from the ring by the worker, a second at a time: no 38-MB copy waits (a
            # clip the ring no longer holds fails there, counted)
            self.worker.submit_from(job, self.ring.peek, wait_s)

    def close(self) -> None:
        self.cut_due(None)
        self.worker.close()

    def part(self) -> Part:
        stats = {**self.worker.stats(), "pending": len(self.pending),
                 "pending_dropped": self.pending.dropped}
        flags = self.worker.flags
        if self.pending.dropped and "clips.drops" not in flags:
            flags.append("clips.drops")
        return Part("clips", stats, tuple(flags))


def open_evidence(config: Config, ring: RingBuffer) -> Evidence | None:
    """``[clips]``: the clip writer next to the detection log (None when disabled)."""
    settings = config.clips
    if not settings.enabled:
        return None
    log_dir = (data_path(config, config.alerts.log).parent if config.alerts.log
               else config.data_dir)
    return Evidence(ClipWriter(log_dir / settings.directory, settings), settings.max_pending,
                    ring)


def open_archive(config: Config, capture: Capture,
                 evidence: Evidence | None) -> ArchiveFeed | None:
    """``[archive]``: the raw archive's block observer (None when disabled); its folder
    is made now, since later a failure would stop the run."""
    settings = config.archive
    if not settings.enabled:
        return None
    directory = data_path(config, Path(settings.directory))
    try:
        make_private_dir(directory)
    except OSError as exc:
        raise ConfigError(f"[archive] cannot create {directory}: "
                          f"{exc.strerror or exc}") from None
    source = capture.source
    return ArchiveFeed(directory, evidence.writer.directory if evidence else None,
                       source.sample_rate, source.channels, capture.clock, capture.anchored,
                       settings)


def position_part(track: Any, source: Any) -> Part:
    """Fixes taken and refused, sentences or reports that did not parse, reconnects."""
    parser = getattr(source, "parser", source)  # NMEA readers parse with a NmeaParser
    stats = {"fixes": track.fixes, "rejected": track.rejected,
             "errors": getattr(parser, "errors", 0), "reconnects": source.reconnects,
             "connected": source.connected}
    return Part("position", stats, tuple(track.flags(time.time())))


def archive_part(feed: ArchiveFeed) -> Part | None:
    """The raw archive's counters and flags, once it exists (the first block made it)."""
    if feed.archive is None:
        return None
    return Part("archive", feed.archive.stats(), tuple(feed.archive.flags))


def log_part(bus: AlertBus) -> Part | None:
    """The detection log's state when the bus reports one: a failing log (disk full)
    degrades, never deafens: alerts still go out."""
    state = bus.stats().get("log")
    if not isinstance(state, dict):
        return None
    stats = {k: state.get(k) for k in ("rows", "unlogged", "error")}
    return Part("log", stats, tuple(state.get("flags", ())), degrades=True)


def validation_part(bus: AlertBus) -> Part:
    """Detections waiting for an operator's verdict and the oldest one's age: a watch
    that falls behind shows here (docs/alerts.md, "Validation")."""
    return Part("validation", bus.verdicts.stats(time.time()))


def previous_run_part(bus: AlertBus) -> Part | None:
    """The run before this one when it died (kill -9, power loss) instead of stopping:
    named in every health of this run, with the onsets closed for it (``alerts/runs.py``)."""
    if not bus.unclean_runs:
        return None
    return Part("previous_run", {
        "run_id": bus.unclean_runs[-1].run_id, "stop_reason": UNCLEAN,
        "onsets_closed": sum(len(run.open_onsets) for run in bus.unclean_runs)})
