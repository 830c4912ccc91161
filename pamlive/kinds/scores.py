"""The window-score kind: one model whose windows get class scores, merged into
detections by PAMGuard's rule (``pamlive/detection.py``)."""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from pamlive.analyze_file import detections_file
from pamlive.calls.gate import ActivityGate
from pamlive.config import ModelConfig, refuse_event_keys
from pamlive.errors import ConfigError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage
from pamlive.kinds.base import LiveContext, LiveStages, Uses
from pamlive.live.publish import DetectionHook, Publisher, WindowMerge
from pamlive.live.windowing import GapTolerantWindows, warm_up
from pamlive.pipeline import ScoreSink, StreamDetector, classify_windows, make_merger
from pamlive.scores import ScoreTable
from pamlive.windows import (
    SegmentWindower,
    Window,
    Windower,
    input_hop_frames,
    make_windower,
)

SPECTRUM_FMAX_HZ = 500.0  # the dashboard strip shows 0..500 Hz, where right whale calls are


class ScoresKind:
    """A model package with window scores (``output`` absent or ``scores``)."""

    noun = "detection(s)"
    activity: ActivityGate | None = None  # no activity gate

    def __init__(self, package: ModelPackage, model: ModelConfig) -> None:
        self.package = package
        self.model = model
        self.name, self.version = package.name, package.version
        self._classifier: Classifier | None = None

    @property
    def classifier(self) -> Classifier:
        """Loaded once, on first use (its input shape checked against the chain's)."""
        if self._classifier is None:
            package = self.package
            self._classifier = Classifier(package, threads=self.model.threads)
            self._classifier.check_features(package.chain().output_shape(
                package.segment_samples))
        return self._classifier

    def with_thresholds(self, threshold: float | None,
                        detection_threshold: float | None) -> ScoresKind:
        """``analyze --threshold``: one threshold for every detecting class."""
        refuse_window_scores_misuse(self.model.path, self.model,
                                    detection_threshold_flag=detection_threshold is not None)
        if threshold is None:
            return self
        on = {c: threshold for c, detects in self.package.binary.items() if detects}
        return ScoresKind(self.package, replace(self.model, thresholds=on))

    analyze_file = staticmethod(detections_file)

    def hop_frames(self, input_rate: int) -> int | None:
        return input_hop_frames(self.package, input_rate, self.model.hop_s)

    def score_table(self, target: Path, audio: Path, input_rate: int,
                    start_utc: datetime | None) -> ScoreTable:
        return ScoreTable(target, audio, self.package.class_names, None, input_rate,
                          start_utc)

    def clustered(self) -> ModelPackage:
        self.refuse(Uses(cluster=True))
        return self.package

    def refuse(self, uses: Uses) -> None:
        refuse_window_scores_misuse(self.model.path, self.model)

    def live(self, ctx: LiveContext) -> LiveStages:
        package, classifier = self.package, self.classifier
        rate, channels = ctx.rate, ctx.channels

        def make() -> Windower | SegmentWindower:
            return make_windower(package, rate, channels, self.model.hop_s)

        def infer(items: list[object]) -> Sequence[object]:
            windows = cast(list[Window], items)
            return list(zip(windows, classify_windows(classifier, windows), strict=True))

        def publisher(scores: queue.Queue[object], hooks: Sequence[DetectionHook]
                      ) -> Publisher:
            merger = make_merger(package, rate, self.model.max_merge, self.model.thresholds)
            return Publisher(WindowMerge(merger), scores, ctx.bus, package=package,
                             station=ctx.config.station, utc=ctx.utc, ring=ctx.ring,
                             evidence=ctx.evidence, track=ctx.track, hooks=hooks,
                             on_detection=ctx.on_detection)

        return LiveStages(
            GapTolerantWindows(make), lambda: warm_up(make, rate, channels, classifier.predict),
            infer, publisher,
            spectrum_fmax_hz=min(package.sample_rate / 2, SPECTRUM_FMAX_HZ))

    def detectors(self) -> Callable[[int, int, Any], StreamDetector]:
        """``pamlive analyze``: a detector per input (rate, channels, score sink)."""
        package, classifier, model = self.package, self.classifier, self.model
        return lambda rate, channels, sink: StreamDetector(
            package, classifier, rate, channels, hop_s=model.hop_s,
            max_merge=model.max_merge, thresholds=model.thresholds,
            on_scores=cast(ScoreSink | None, sink))


def refuse_window_scores_misuse(what: str, model: ModelConfig, *,
                                detection_threshold_flag: bool = False) -> None:
    """What a window-score model (or an ensemble of them) refuses: an event model's keys
    and flag."""
    refuse_event_keys(what, activity_gate=model.activity_gate, precision=model.precision)
    if detection_threshold_flag:
        raise ConfigError(f"detection_threshold is an event model's (calls) threshold; {what} "
                          "gives window scores: set window-score thresholds instead")
