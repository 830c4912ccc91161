"""PAMGuard's merge rule: consecutive positive windows form one detection.

A detection of class ``c`` opens at the first window where any channel's score for ``c``
reaches its threshold, grows while the following windows are positive, and closes at the
first negative window, at a gap in the window sequence, or once it holds ``max_merge``
windows. Channels are merged: one call heard on four hydrophones is one detection.

The opening is an event of its own (:class:`Onset`): the live monitor alerts on it at
once, without waiting for the window that closes the detection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detection:
    class_name: str
    score: float
    scores: dict[str, float]
    channels: list[int]
    start_sample: int
    end_sample: int
    sample_rate: int
    n_windows: int
    best_channel: int
    low_freq: float | None = None
    high_freq: float | None = None
    ready_sample: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.end_sample / self.sample_rate


@dataclass(frozen=True)
class Onset:
    """A detection as it opens: the first window at or over threshold (the early alert).

    ``start_sample`` is the detection's start; ``end_sample`` the opening window's end;
    ``score``/``scores``/``channels`` are that window's, the detection's "so far".
    """

    class_name: str
    score: float
    scores: dict[str, float]
    channels: list[int]
    start_sample: int
    end_sample: int
    sample_rate: int


@dataclass
class _Open:
    det: Detection
    last_index: int


class WindowMerger:
    """Feed window scores in stream order; receive closed (and opened) detections."""

    def __init__(
        self,
        class_names: Sequence[str],
        thresholds: Mapping[str, float],
        binary: Mapping[str, bool],
        max_merge: int,
        sample_rate: int,
        freq_range: tuple[float, float] | None = None,
    ) -> None:
        self.class_names = list(class_names)
        self._thresholds = np.array([thresholds[c] for c in self.class_names], np.float32)
        self._active = [i for i, c in enumerate(self.class_names) if binary[c]]
        self.max_merge = int(max_merge)
        self.sample_rate = int(sample_rate)
        self.freq_range = freq_range
        self._open: dict[int, _Open] = {}

    def push(self, window_index: int, start_sample: int, end_sample: int,
             scores: np.ndarray) -> list[Detection]:
        """``scores``: ``(channels, classes)`` for one window position."""
        events = self.push_events(window_index, start_sample, end_sample, scores)
        return [e for e in events if isinstance(e, Detection)]

    def push_events(self, window_index: int, start_sample: int, end_sample: int,
                    scores: np.ndarray) -> list[Onset | Detection]:
        """Like :meth:`push`, also reporting each opening, in the order things happened
        (a detection closed by a gap, the one opened after it, ...)."""
        events: list[Onset | Detection] = []
        for ci in self._active:
            positive = np.flatnonzero(scores[:, ci] >= self._thresholds[ci])
            current = self._open.get(ci)
            contiguous = current is not None and window_index == current.last_index + 1
            if current is not None and (not positive.size or not contiguous):
                current.det.ready_sample = end_sample
                events.append(self._open.pop(ci).det)
                current = None
            if not positive.size:
                continue
            is_new = current is None
            if current is None:
                current = self._open[ci] = _Open(self._new(ci, start_sample), window_index)
            self._extend(current, ci, window_index, end_sample, scores, positive)
            if is_new:
                events.append(_onset(current.det))
            if current.det.n_windows >= self.max_merge:
                current.det.ready_sample = end_sample
                events.append(self._open.pop(ci).det)
        return events

    def flush(self, end_sample: int | None = None) -> list[Detection]:
        """End of stream: close everything still open."""
        closed = []
        for ci in sorted(self._open):
            det = self._open[ci].det
            det.ready_sample = end_sample if end_sample is not None else det.end_sample
            closed.append(det)
        self._open.clear()
        return closed

    def _new(self, ci: int, start_sample: int) -> Detection:
        lo, hi = self.freq_range if self.freq_range else (None, None)
        return Detection(
            class_name=self.class_names[ci], score=-np.inf,
            scores={c: 0.0 for c in self.class_names}, channels=[], start_sample=start_sample,
            end_sample=start_sample, sample_rate=self.sample_rate, n_windows=0, best_channel=0,
            low_freq=lo, high_freq=hi,
        )

    def _extend(self, cur: _Open, ci: int, window_index: int, end_sample: int,
                scores: np.ndarray, positive: np.ndarray) -> None:
        det = cur.det
        cur.last_index = window_index
        det.n_windows += 1
        det.end_sample = end_sample
        det.channels = sorted(set(det.channels) | {int(c) for c in positive})
        best = int(np.argmax(scores[:, ci]))
        if scores[best, ci] > det.score:
            det.score = float(scores[best, ci])
            det.best_channel = best
        window_max = scores.max(axis=0)
        for k, name in enumerate(self.class_names):
            det.scores[name] = max(det.scores[name], float(window_max[k]))


def _onset(det: Detection) -> Onset:
    """A copy of a just-opened detection (the detection itself goes on growing)."""
    return Onset(det.class_name, det.score, dict(det.scores), list(det.channels),
                 det.start_sample, det.end_sample, det.sample_rate)
