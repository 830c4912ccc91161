"""Bearings and channel agreement for detections found in a recording (``analyze``).

With the whole recording at hand nothing has to wait: each detection's samples are read
back, its bearing computed, and both agreement rules applied before the table is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from pamlive.array.agreement import ChannelAgreement
from pamlive.array.bearing import BearingEstimator, BearingResult
from pamlive.config import ArraySettings
from pamlive.detection import Detection

BEARING_KEY = "bearing"  # Detection.extra[BEARING_KEY]: its BearingResult

Read = Callable[[int, int], np.ndarray]  # [start, end) samples -> (frames, channels)


def bearing_of(det: Detection) -> BearingResult | None:
    result = det.extra.get(BEARING_KEY)
    return result if isinstance(result, BearingResult) else None


def locate(detections: Sequence[Detection], read: Read, settings: ArraySettings,
           estimator: BearingEstimator | None = None) -> list[Detection]:
    """The detections that pass the agreement rules, each with its bearing in ``extra``."""
    estimator = estimator or BearingEstimator(settings)
    agreement = ChannelAgreement(settings.min_channels)
    kept = []
    for det in detections:
        if not agreement.accepts(det):
            continue
        result = estimator.for_detection(det, read(det.start_sample, det.end_sample))
        if det.class_name in settings.tdoa_consistent and not result.tdoa_consistent:
            continue
        det.extra[BEARING_KEY] = result
        kept.append(det)
    return kept


def file_reader(path: Path) -> Read:
    """Read ``[start, end)`` frames of an audio file (float32, frames x channels)."""
    def read(start: int, end: int) -> np.ndarray:
        data, _ = sf.read(str(path), start=start, stop=end, dtype="float32", always_2d=True)
        return data
    return read
