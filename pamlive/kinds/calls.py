"""The call kind: an event model (``"output": {"kind": "events"}``, bats) reports calls
with their own boxes and species, not window scores; no merge rule (``live/calls.py``,
``pamlive/calls/``)."""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import cast

from pamlive.analyze_file import calls_file
from pamlive.calls.gate import ActivityGate, open_gate
from pamlive.calls.stream import EventDetector
from pamlive.config import ModelConfig
from pamlive.errors import ConfigError
from pamlive.inference.event_spec import EventSpec
from pamlive.inference.heatmaps import EventModel
from pamlive.inference.package import ModelPackage
from pamlive.kinds.base import LiveContext, LiveStages, Uses
from pamlive.live.calls import CallFinder, CallPublisher
from pamlive.live.publish import DetectionHook
from pamlive.live.windowing import GapTolerantWindows, warm_up
from pamlive.scores import ScoreTable
from pamlive.windows import EventWindower, Window, input_hop_frames, make_event_windower


class CallsKind:
    """A model package whose ``output`` is ``events``."""

    noun = "call(s)"

    def __init__(self, package: ModelPackage, spec: EventSpec, model: ModelConfig) -> None:
        self.package = package
        self.spec = spec
        self.model = model
        self.name, self.version = package.name, package.version
        self._network: EventModel | None = None
        self.activity: ActivityGate | None = None  # analyze's gate, counted over its inputs

    analyze_file = staticmethod(calls_file)

    def hop_frames(self, input_rate: int) -> int | None:
        return input_hop_frames(self.package, input_rate, self.model.hop_s)

    def score_table(self, target: Path, audio: Path, input_rate: int,
                    start_utc: datetime | None) -> ScoreTable:
        raise self._cannot("--scores (window scores)")

    @property
    def network(self) -> EventModel:
        if self._network is None:
            self._network = EventModel(self.package, threads=self.model.threads,
                                       precision=self.model.precision)
        return self._network

    def with_thresholds(self, threshold: float | None,
                        detection_threshold: float | None) -> CallsKind:
        """``analyze --detection-threshold``; ``--threshold`` (its old meaning here) still
        works, with a warning."""
        if threshold is not None:
            print("pamlive: warning: --threshold on an event model is deprecated: it is the "
                  "window-score threshold; use --detection-threshold", file=sys.stderr)
            detection_threshold = detection_threshold if detection_threshold is not None \
                else threshold
        if detection_threshold is None:
            return self
        return CallsKind(self.package, self.spec,
                         replace(self.model, detection_threshold=detection_threshold))

    def refuse(self, uses: Uses) -> None:
        what = ("--scores (window scores)" if uses.score_table else "[array] bearings"
                if uses.array else "--cluster" if uses.cluster else None)
        if what is not None:
            raise self._cannot(what)
        if self.model.thresholds:
            raise ConfigError(f"{self.package.path} is an event model: [model] thresholds are "
                              "per-class window-score thresholds; set [model] "
                              "detection_threshold instead")
        self.gate()  # an activity gate where it could skip calls

    def clustered(self) -> ModelPackage:
        raise self._cannot("--cluster")

    def _cannot(self, what: str) -> ConfigError:
        return ConfigError(f"{self.package.path} is an event model: it reports calls, and "
                           f"{what} is for window-score models; run it without it")

    def gate(self) -> ActivityGate:
        """The activity gate at the threshold in force (refused where unsafe)."""
        return open_gate(self.model.activity_gate,
                         self.spec.threshold(self.model.detection_threshold))

    def live(self, ctx: LiveContext) -> LiveStages:
        deaf = self.spec.band_problem(ctx.rate)
        if deaf is not None:
            source = ctx.config.source
            raise ConfigError(f"{', '.join(map(str, source.files))}: {deaf}" if source.kind
                              == "replay" else f"[source] {source.kind}: {deaf}")
        rate, channels = ctx.rate, ctx.channels

        def make() -> EventWindower:
            return make_event_windower(self.package, rate, channels, self.model.hop_s)

        finder = CallFinder(self.network, rate, make().hop_s, self.model.detection_threshold,
                            self.gate())

        def infer(items: list[object]) -> Sequence[object]:
            return finder.find(cast(list[Window], items))

        publishers: list[CallPublisher] = []

        def publisher(found: queue.Queue[object], hooks: Sequence[DetectionHook]
                      ) -> CallPublisher:
            assert not hooks  # [array] is refused
            publishers.append(CallPublisher(
                found, finder, ctx.bus, package=self.package, station=ctx.config.station,
                utc=ctx.utc, ring=ctx.ring, input_rate=rate))
            return publishers[-1]

        return LiveStages(GapTolerantWindows(make), lambda: warm_up(make, rate, channels),
                          infer, publisher, parts=[lambda: publishers[0].part()],
                          spectrum_fmax_hz=min(self.package.sample_rate / 2,
                                               self.spec.max_freq_hz))

    def detectors(self) -> Callable[[int, int, object], EventDetector]:
        """``pamlive analyze``: an event detector per input (rate, channels); the network is
        loaded once, and one gate (:attr:`activity`) counts over all inputs."""
        network, model = self.network, self.model
        gate = self.activity = self.gate()
        return lambda rate, channels, _sink: EventDetector(
            network, rate, channels, hop_s=model.hop_s,
            threshold=model.detection_threshold, gate=gate)
