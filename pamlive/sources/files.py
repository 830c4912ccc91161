"""Audio files: find them, check them, read them in blocks (WAV/FLAC/AIFF via soundfile).

Every problem with a file becomes an :class:`~pamlive.errors.AudioInputError` naming the
file and the problem, so ``analyze`` can report it and go on with the other files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from pamlive.errors import AudioInputError, first_line

AUDIO_SUFFIXES = {".wav", ".flac", ".aif", ".aiff"}
_SHORT_DATA = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")
MIN_SAMPLE_RATE = 2000

# e.g. pamlive's own raw_20260101T120000_250Z (ms), NOPP6_EST_20090328_001500,
# PAM_20010327_091800, 20200817_011332, GSC_2000-05-19_00-15-00
_TIME_PATTERNS = (
    (re.compile(r"(\d{8})T(\d{6}_\d{3})Z"), "%Y%m%d%H%M%S_%f"),
    (re.compile(r"(\d{8})[_T-](\d{6})"), "%Y%m%d%H%M%S"),
    (re.compile(r"(\d{4}-\d{2}-\d{2})[_T](\d{2}-\d{2}-\d{2})"), "%Y-%m-%d%H-%M-%S"),
)


@dataclass(frozen=True)
class AudioFileInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def start_time_from_name(path: Path) -> datetime | None:
    """The recording start time encoded in a file name, if any (UTC)."""
    for pattern, fmt in _TIME_PATTERNS:
        m = pattern.search(path.stem)
        if m:
            try:
                return datetime.strptime(m.group(1) + m.group(2), fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
    return None


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their audio files; in time order.

    Time order is the start time in the file name where there is one, else the name.
    A path that does not exist is an error naming it.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(f for f in sorted(p.rglob("*"))
                         if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
        elif p.exists():
            found.append(p)
        else:
            raise AudioInputError(f"{p}: no such file or folder")
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda f: (start_time_from_name(f) or epoch, f.name))


def open_audio(path: str | Path) -> AudioFileInfo:
    """Check that ``path`` is a readable audio file at a usable rate."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioInputError(f"{path}: not a readable audio file ({first_line(exc)})") from None
    if info.frames <= 0:
        raise AudioInputError(f"{path}: the file holds no audio")
    if info.samplerate < MIN_SAMPLE_RATE:
        raise AudioInputError(
            f"{path}: sample rate {info.samplerate} Hz is below the {MIN_SAMPLE_RATE} Hz minimum"
        )
    frames = max(int(info.frames), _announced_frames(info.extra_info))
    return AudioFileInfo(path, int(info.samplerate), int(info.channels), frames)


def _announced_frames(extra_info: str) -> int:
    """Frames the header promises, where libsndfile saw fewer bytes than announced.

    libsndfile silently shortens a truncated WAV/AIFF to what is there and notes
    ``data : 80000 (should be 39978)``; that note is how truncation is detected.
    """
    m = _SHORT_DATA.search(extra_info)
    align = _BLOCK_ALIGN.search(extra_info)
    if not m or not align or int(m.group(1)) <= int(m.group(2)):
        return 0
    return int(m.group(1)) // max(int(align.group(1)), 1)


def iter_blocks(path: str | Path, blocksize: int = 65536, start: int = 0,
                stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``(frames, channels)`` float32 blocks of frames ``[start, stop)``.

    NaN/Inf raise, naming the frame; so does a file shorter than its header (to the end)
    or than ``stop``. ``start``/``stop`` let a cluster worker read only its chunk.
    """
    info = open_audio(path)
    end = info.frames if stop is None else min(stop, info.frames)
    read = start
    try:
        with sf.SoundFile(str(info.path)) as f:
            if start:
                f.seek(start)
            while read < end or stop is None:
                want = blocksize if stop is None else min(blocksize, end - read)
                block = f.read(want, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if not np.isfinite(block).all():
                    first_bad = int(np.argmin(np.isfinite(block).all(axis=1)))
                    if first_bad:  # deliver the good audio before the bad sample
                        yield block[:first_bad]
                    bad = read + first_bad
                    raise AudioInputError(
                        f"{info.path}: NaN or Inf sample at {bad / info.sample_rate:.3f} s "
                        f"(frame {bad})"
                    )
                read += block.shape[0]
                yield block
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioInputError(f"{info.path}: read error after {read} frames ({first_line(exc)})") \
            from None
    if read < end:
        raise AudioInputError(
            f"{info.path}: truncated: header announces {info.frames} frames, "
            f"only {read} could be read"
        )
