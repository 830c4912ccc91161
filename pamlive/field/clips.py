"""Evidence per detection: an audio clip cut by sample index, and a spectrogram PNG.

The detection is published at once with ``clip`` naming the file it will have; the
file is written when the ring holds the post-roll. :meth:`ClipWriter.plan` fixes the
sample range and the names, :class:`PendingClips` holds plans until their last sample
has arrived, and :meth:`ClipWriter.write` takes the samples the caller read from the
ring (any source of ``(frames, channels)`` plus the index of the first frame), so this
module knows nothing of the ring's internals; :meth:`ClipWriter.write_from` instead
reads the ring through its ``peek`` a second at a time, which the live engine uses (no
copy of a whole clip, 38 MB at 8 ch x 96 kHz, is ever held). Files are written under a
temporary name and renamed, so a reader never sees half a clip.

Encoding FLAC and drawing the PNG take tens of ms, so the live engine hands due clips to
a :class:`ClipWorker`: its own thread behind a bounded queue, drops and failures
counted. A full disk fails a clip (counted, an ``alert.clips.write_failed``), never the
monitor.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import shutil
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from pamlive.config import ClipSettings
from pamlive.detection import Detection
from pamlive.dsp.windows import psd_frames
from pamlive.field.health_alerts import HealthAlerts
from pamlive.private import create_private_file, make_private_dir
from pamlive.utc import file_stamp

log = logging.getLogger(__name__)

_SUBTYPE = {"flac": "PCM_24", "wav": "FLOAT"}
QUEUED_CLIPS = 8  # clips cut from the ring and waiting for the disk (each holds its audio)
# ... and the audio the worker may hold at once, queued or being written: a 13-s clip of
# 8 channels at 96 kHz is 38 MB, so a burst of calls while the disk is slow must not take
# eight of them; one clip is always taken, however long
QUEUED_BYTES = 80 * 2**20
_BOX_RGB = (255, 40, 40)
PIECE_S = 1.0  # audio a clip read from the ring is written by (ClipWriter.write_from)
_IMAGE_FRAMES = 4  # spectrogram frames of a clip's PNG computed at once: 4 MB at 96 kHz


class Piece(Protocol):
    """What a ring's ``peek`` returns: a copy of the frames it still holds, from
    ``start_sample``."""

    @property
    def start_sample(self) -> int: ...

    @property
    def data(self) -> np.ndarray: ...


Peek = Callable[[int, int], Piece | None]  # RingBuffer.peek: [start, end) as far as held


@dataclass(frozen=True)
class ClipJob:
    """What to cut for one detection, and where it goes."""

    audio_path: Path
    image_path: Path | None
    start_sample: int  # first sample wanted (pre-roll included)
    end_sample: int  # one past the last sample wanted (post-roll included)
    detection: Detection


@dataclass(frozen=True)
class Evidence:
    """What was written: the clip holds samples ``[start_sample, end_sample)``."""

    audio_path: Path
    image_path: Path | None
    start_sample: int
    end_sample: int


class ClipWriter:
    """Plans and writes clips into one directory (next to the detection log)."""

    def __init__(self, directory: Path, settings: ClipSettings) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.written = 0
        self.failed = 0

    def plan(self, detection: Detection, start_utc: datetime) -> ClipJob:
        """The sample range and file names for ``detection`` (which starts at ``start_utc``)."""
        rate = detection.sample_rate
        start = max(0, detection.start_sample - round(self.settings.pre_s * rate))
        end = detection.end_sample + round(self.settings.post_s * rate)
        stem = f"{file_stamp(start_utc)}_{_safe(detection.class_name)}_{detection.start_sample}"
        audio = self.directory / f"{stem}.{self.settings.format}"
        image = self.directory / f"{stem}.png" if self.settings.spectrogram else None
        return ClipJob(audio, image, start, end, detection)

    def write(self, job: ClipJob, samples: np.ndarray, start_sample: int) -> Evidence:
        """Write ``samples`` (frames, channels), whose first frame is ``start_sample``.

        The caller passes what the ring still holds of ``[job.start_sample,
        job.end_sample)``; a shorter pre-roll (the ring wrapped) is fine, the evidence
        records the range actually written. Raises ValueError when the samples miss the
        detection, OSError or RuntimeError when the disk refuses (libsndfile reports a full
        disk as ``soundfile.LibsndfileError``, a RuntimeError); all counted in ``failed``.
        """
        try:
            evidence = self._write(job, samples, start_sample)
        except (OSError, RuntimeError, ValueError):
            self.failed += 1
            raise
        self.written += 1
        return evidence

    def write_from(self, job: ClipJob, peek: Peek) -> Evidence:
        """Write the clip reading the ring a piece (``PIECE_S``) at a time, so that no
        copy of the whole clip is ever held (38 MB at 8 ch x 96 kHz): only its PNG's
        channel. ``peek`` is the ring's. The pre-roll may be shorter (the ring wrapped);
        so may the post-roll at shutdown (the audio ended). A piece overwritten while the
        clip is written fails it (ValueError), as when the detection is no longer held at
        all. Counted like :meth:`write`."""
        try:
            evidence = self._write_from(job, peek)
        except (OSError, RuntimeError, ValueError):
            self.failed += 1
            raise
        self.written += 1
        return evidence

    def _check_reserve(self) -> None:
        """OSError while the data disk has less than ``reserve_mb`` free: the clip waits
        for space rather than take the detection log's."""
        reserve = self.settings.reserve_mb * 1e6
        if reserve <= 0:
            return
        place = self.directory
        while not place.exists() and place != place.parent:
            place = place.parent
        free = shutil.disk_usage(place).free
        if free < reserve:
            raise OSError(errno.ENOSPC, f"{free / 1e6:.1f} MB free on the data disk, under "
                          f"[clips] reserve_mb = {self.settings.reserve_mb:g} kept for the "
                          "detection log")

    def _write_from(self, job: ClipJob, peek: Peek) -> Evidence:
        self._check_reserve()
        det = job.detection
        step = max(1, round(PIECE_S * det.sample_rate))
        first = peek(job.start_sample, min(job.end_sample, job.start_sample + step))
        if first is None or first.start_sample > det.start_sample:
            raise ValueError("the ring no longer holds it")
        lo = first.start_sample
        end = [job.end_sample]  # or where the audio ended, past the detection
        channels = first.data.shape[1]
        channel = min(det.best_channel, channels - 1)
        drawn = np.empty(job.end_sample - lo, np.float32) if job.image_path else None
        make_private_dir(self.directory)
        fmt = self.settings.format

        def write(tmp: Path) -> None:
            piece: Piece | None = first
            at = lo
            with sf.SoundFile(tmp, "w", det.sample_rate, channels, _SUBTYPE[fmt],
                              format=fmt.upper()) as out:
                while at < job.end_sample:
                    if piece is None:
                        piece = peek(at, min(job.end_sample, at + step))
                    if piece is None and at >= det.end_sample:
                        end[0] = at  # nothing after: the input ended (a shutdown)
                        break
                    if piece is None or piece.start_sample != at:
                        raise ValueError("the ring no longer holds it")
                    data = piece.data
                    if drawn is not None:
                        drawn[at - lo: at - lo + data.shape[0]] = data[:, channel]
                    if fmt != "wav":  # the piece is ours
                        np.clip(data, -1.0, 1.0, out=data)
                    out.write(data)
                    at += data.shape[0]
                    piece = None

        _atomic(job.audio_path, write)
        hi = end[0]
        if drawn is not None and job.image_path is not None:
            image = spectrogram_image(drawn[:hi - lo], det.sample_rate, det, lo)
            _atomic(job.image_path, lambda tmp: image.save(tmp, format="PNG"))
        return Evidence(job.audio_path, job.image_path, lo, hi)

    def _write(self, job: ClipJob, samples: np.ndarray, start_sample: int) -> Evidence:
        self._check_reserve()
        if samples.ndim == 1:
            samples = samples[:, None]
        lo = max(job.start_sample, start_sample)
        hi = min(job.end_sample, start_sample + samples.shape[0])
        det = job.detection
        if hi <= lo or lo > det.start_sample or hi < det.end_sample:
            raise ValueError(f"samples [{start_sample}, {start_sample + samples.shape[0]}) "
                             f"do not cover the detection [{det.start_sample}, {det.end_sample})")
        clip = samples[lo - start_sample: hi - start_sample]
        make_private_dir(self.directory)
        fmt = self.settings.format
        drawn = None
        if job.image_path is not None:  # drawn from the samples before clipping
            channel = min(det.best_channel, clip.shape[1] - 1)
            drawn = job.image_path, spectrogram_image(clip[:, channel], det.sample_rate, det, lo)
        if fmt != "wav":  # in place: the samples are ours, and a copy is a clip's size
            np.clip(clip, -1.0, 1.0, out=clip)
        _atomic(job.audio_path, lambda tmp: sf.write(
            tmp, clip, det.sample_rate, subtype=_SUBTYPE[fmt], format=fmt.upper()))
        if drawn is not None:
            image_path, image = drawn
            _atomic(image_path, lambda tmp: image.save(tmp, format="PNG"))
        return Evidence(job.audio_path, job.image_path, lo, hi)


class PendingClips:
    """Clip plans waiting for their post-roll; bounded, drops counted."""

    def __init__(self, max_pending: int) -> None:
        self._jobs: deque[ClipJob] = deque()
        self.max_pending = max_pending
        self.dropped = 0

    def add(self, job: ClipJob) -> bool:
        if len(self._jobs) >= self.max_pending:
            self.dropped += 1
            return False
        self._jobs.append(job)
        return True

    def pop_due(self, written_samples: int) -> list[ClipJob]:
        """Jobs whose last sample is in the ring (``written_samples`` = ring's write count)."""
        due = [job for job in self._jobs if job.end_sample <= written_samples]
        for job in due:
            self._jobs.remove(job)
        return due

    def __len__(self) -> int:
        return len(self._jobs)


class ClipWorker:
    """Writes clips on its own thread, so no encoder ever delays an alert.

    ``submit`` never blocks: a full queue (``max_queued`` clips, or ``max_bytes`` of audio
    held, the clip being written included) drops the clip and counts it. A failed write is
    counted and logged; the first failure after a success (and the first success after
    failures) becomes an event for a health alert, drained by :meth:`drain_events`.
    """

    def __init__(self, writer: ClipWriter, max_queued: int = QUEUED_CLIPS,
                 max_bytes: int = QUEUED_BYTES) -> None:
        self.writer = writer
        self.dropped = 0
        self.max_bytes = max_bytes
        self._held = 0  # bytes of audio queued or being written
        self._room = threading.Condition()
        self.last_error: str | None = None
        # a clip's samples and first sample index, or the ring's peek to read them from
        self._queue: queue.Queue[tuple[ClipJob, tuple[np.ndarray, int] | Peek] | None] = (
            queue.Queue(max_queued))
        self.alerts = HealthAlerts()
        self._thread = threading.Thread(target=self._run, name="pamlive-clips", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: ClipJob, samples: np.ndarray, start_sample: int,
               wait_s: float = 0.0) -> bool:
        """Queue ``samples`` (owned by the worker from now on); False if dropped. Only a
        shutdown waits (``wait_s``) for room: no alert is behind it any more."""
        return self._submit(job, (samples, start_sample), samples.nbytes, wait_s)

    def submit_from(self, job: ClipJob, peek: Peek, wait_s: float = 0.0) -> bool:
        """Queue a clip the worker reads from the ring itself, a piece at a time
        (:meth:`ClipWriter.write_from`): no copy of it waits. It fails (counted) if the
        ring overwrote it before the worker came to it."""
        return self._submit(job, peek, 0, wait_s)

    def _submit(self, job: ClipJob, payload: tuple[np.ndarray, int] | Peek, size: int,
                wait_s: float) -> bool:
        with self._room:
            fits = self._room.wait_for(
                lambda: self._held == 0 or self._held + size <= self.max_bytes, wait_s)
            if fits:
                self._held += size
        try:
            if not fits:
                raise queue.Full
            self._queue.put((job, payload), timeout=wait_s or None, block=wait_s > 0)
        except queue.Full:
            if fits:
                self._release(size)
            self.dropped += 1
            log.error("clip %s dropped: %d clip(s), %.0f MB of audio already wait for the "
                      "disk", job.audio_path.name, self._queue.qsize(), self._held / 1e6)
            return False
        return True

    def _release(self, size: int) -> None:
        with self._room:
            self._held -= size
            self._room.notify_all()

    def fail(self, job: ClipJob, why: str) -> None:
        """A clip that could not even be cut (the ring lost its audio): counted as failed."""
        self.writer.failed += 1
        self._failed(job, why)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread (if it was started)."""
        if self._thread.is_alive():
            self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)

    @property
    def flags(self) -> list[str]:
        """``clips.write_failed`` while the last write failed; ``clips.drops`` after drops."""
        flags = ["clips.write_failed"] if self.last_error else []
        return flags + (["clips.drops"] if self.dropped else [])

    def stats(self) -> dict[str, int | float | str | None]:
        return {"written": self.writer.written, "failed": self.writer.failed,
                "dropped": self.dropped, "queued": self._queue.qsize(),
                "queued_mb": round(self._held / 1e6, 1), "last_error": self.last_error}

    def drain_events(self) -> list[tuple[str, str]]:
        """``(alert class, message)`` pairs since the last call."""
        return self.alerts.drain()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, payload = item
            size = 0 if callable(payload) else payload[0].nbytes
            del item
            self._write(job, payload)
            # the clip's audio (tens of MB) is not kept while the worker waits for the next
            del payload
            self._release(size)

    def _write(self, job: ClipJob, payload: tuple[np.ndarray, int] | Peek) -> None:
        try:
            if callable(payload):
                self.writer.write_from(job, payload)
            else:
                self.writer.write(job, *payload)
        except Exception as exc:  # whatever it is, a clip must never stop the worker
            if not isinstance(exc, OSError | RuntimeError | ValueError):
                self.writer.failed += 1
            self._failed(job, str(exc) or type(exc).__name__)
        else:
            if self.last_error is not None:
                self.alerts.add("clips.recovered", "clips are written again")
                log.warning("clips are written again")
            self.last_error = None

    def _failed(self, job: ClipJob, why: str) -> None:
        message = f"clip {job.audio_path.name} not written: {why}"
        log.error("%s", message)
        if self.last_error is None:
            self.alerts.add("clips.write_failed", message)
        self.last_error = message


def spectrogram_image(
    x: np.ndarray, rate: int, detection: Detection, first_sample: int,
    width: int = 800, height: int = 300,
) -> Image.Image:
    """Spectrogram of ``x`` (first index ``first_sample``) with the detection's box in red.

    Frequencies shown go up to twice the detection's high edge (the band the model saw,
    with context), or Nyquist. The box spans the detection's samples in time and its
    ``low_freq``..``high_freq`` (the whole height when the model gives no band).
    """
    nyquist = rate / 2.0
    fmax = min(nyquist, 2.0 * detection.high_freq) if detection.high_freq else nyquist
    nperseg = int(min(len(x), 2 ** np.ceil(np.log2(rate / (fmax / 128.0)))))
    db = 10.0 * np.log10(_band_power(x, rate, nperseg, fmax) + 1e-20)
    lo, hi = np.percentile(db, [5.0, 99.8])
    gray = np.clip((db - lo) / max(hi - lo, 1e-9), 0.0, 1.0)[::-1]  # low frequencies at bottom
    pixels = (255 * gray).astype(np.uint8)
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    image = image.convert("RGB")
    duration = len(x) / rate

    def x_of(sample: int) -> float:
        return (sample - first_sample) / rate / duration * (width - 1)

    def y_of(freq: float) -> float:
        return (1.0 - min(freq, fmax) / fmax) * (height - 1)

    top = y_of(detection.high_freq) if detection.high_freq else 0
    bottom = y_of(detection.low_freq) if detection.low_freq else height - 1
    ImageDraw.Draw(image).rectangle(
        [x_of(detection.start_sample), top, x_of(detection.end_sample), bottom],
        outline=_BOX_RGB, width=2,
    )
    return image


def _band_power(x: np.ndarray, rate: int, nperseg: int, fmax: float) -> np.ndarray:
    """scipy's PSD spectrogram of ``x`` (frames overlapping by 3/4), rows up to ``fmax``.

    Computed ``_IMAGE_FRAMES`` frames at a time: each frame is transformed on its own, so
    the rows are those of one call over all of ``x``, but a 13-s clip at 96 kHz needs a
    few MB at once instead of ~150 MB (float64 frames, complex spectra, all bins).
    """
    step = nperseg - nperseg * 3 // 4
    frames = (len(x) - nperseg) // step + 1
    parts = []
    for first in range(0, frames, _IMAGE_FRAMES):
        n = min(_IMAGE_FRAMES, frames - first)
        piece = x[first * step: (first + n - 1) * step + nperseg].astype(np.float64)
        freqs, power = psd_frames(piece, rate, nperseg)
        parts.append(power[freqs <= fmax])
    return np.concatenate(parts, axis=1)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        create_private_file(tmp)
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
