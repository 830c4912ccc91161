"""Windows -> scores -> detections, synchronously: ``pamlive analyze``'s detector, and the
pieces the live monitor shares with it (thresholds, the merger, one batch per window set).

Windows are cut by :mod:`pamlive.windows` (the same cutter as live), so the live monitor
and ``analyze`` see the same windows for the same audio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from pamlive.detection import Detection, WindowMerger
from pamlive.errors import ConfigError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage
from pamlive.windows import Window, make_windower


def merged_thresholds(package: ModelPackage, overrides: Mapping[str, float]) -> dict[str, float]:
    unknown = set(overrides) - set(package.class_names)
    if unknown:
        raise ConfigError(f"threshold for unknown class(es) {', '.join(sorted(unknown))}; "
                          f"the model's classes are {', '.join(package.class_names)}")
    return {**package.thresholds, **overrides}


def make_merger(package: ModelPackage, input_rate: int, max_merge: int,
                thresholds: Mapping[str, float]) -> WindowMerger:
    return WindowMerger(package.class_names, merged_thresholds(package, thresholds),
                        package.binary, max_merge, input_rate, package.freq_range)


def classify_windows(classifier: Classifier, windows: list[Window]) -> np.ndarray:
    """Scores ``(windows, channels, classes)``, all channels of all windows in one batch."""
    feats = np.stack([w.features for w in windows])
    n, ch = feats.shape[:2]
    return classifier.predict(feats.reshape(n * ch, *feats.shape[2:])).reshape(n, ch, -1)


ScoreSink = Callable[[Window, np.ndarray], None]


class StreamDetector:
    """Windower -> Classifier -> WindowMerger, synchronously (``pamlive analyze``)."""

    def __init__(self, package: ModelPackage, classifier: Classifier, input_rate: int,
                 channels: int, *, hop_s: float = 1.0, max_merge: int = 10,
                 thresholds: Mapping[str, float] | None = None,
                 on_scores: ScoreSink | None = None) -> None:
        self.windower = make_windower(package, input_rate, channels, hop_s)
        self.classifier = classifier
        self.merger = make_merger(package, input_rate, max_merge, thresholds or {})
        self.on_scores = on_scores
        self.samples_in = 0

    def push(self, block: np.ndarray) -> list[Detection]:
        self.samples_in += block.shape[0]
        return self._score(self.windower.push(block))

    def finish(self) -> list[Detection]:
        return self._score(self.windower.flush()) + self.merger.flush(self.samples_in)

    def _score(self, windows: list[Window]) -> list[Detection]:
        if not windows:
            return []
        scores = classify_windows(self.classifier, windows)
        found: list[Detection] = []
        for w, s in zip(windows, scores, strict=True):
            if self.on_scores is not None:
                self.on_scores(w, s)
            found.extend(self.merger.push(w.index, w.start_sample, w.end_sample, s))
        return found
