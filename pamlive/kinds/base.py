"""The output-kind seam: what a kind of model output (window scores, an ensemble's fused
scores, an event model's calls) gives the live engine and ``pamlive analyze``.

Everything that depends on what a model reports lives behind :class:`OutputKind`: the
config it refuses, the live stages it swaps in (window cutter, inference step, the
engine thread's publisher) and its offline detector. The engine, ``analyze`` and the CLI
ask the kind and never test which kind they hold; adding a kind is one module in
``pamlive/kinds/`` (docs/architecture.md, "Output kinds").
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pamlive.alerts.bus import AlertBus
from pamlive.analyze_file import FileAnalysis
from pamlive.buffers import RingBuffer
from pamlive.calls.gate import ActivityGate
from pamlive.calls.stream import EventDetector
from pamlive.config import Config, ModelConfig
from pamlive.detection import Detection
from pamlive.ensemble import EnsembleDetector
from pamlive.field.position import PositionTrack
from pamlive.inference.package import ModelPackage
from pamlive.live.health import Part
from pamlive.live.publish import DetectionHook
from pamlive.live.windowing import WindowCutter
from pamlive.live.wiring import Evidence
from pamlive.pipeline import StreamDetector
from pamlive.scores import ScoreTable

Detector = StreamDetector | EnsembleDetector | EventDetector


class LivePublisher(Protocol):
    """The engine thread's end of a kind: drains the inference queue onto the bus.

    ``detections`` counts what it published (the stop line's count), ``ended`` turns true
    once the end-of-stream marker came through."""

    detections: int
    ended: bool

    def drain(self, timeout: float) -> None: ...

    def flush(self, end_sample: int) -> None: ...


@dataclass(frozen=True)
class LiveContext:
    """What the engine hands a kind to build its stages."""

    config: Config
    rate: int  # input sample rate
    channels: int
    bus: AlertBus
    ring: RingBuffer
    utc: Callable[[int], datetime]  # the sample clock
    evidence: Evidence | None
    track: PositionTrack | None
    on_detection: Callable[[Detection], None] | None = None


@dataclass
class LiveStages:
    """A kind's pieces of the live engine.

    ``windows``: the windowing thread's cutter (gap tolerant); ``warm_up``: run once before
    capture (kernels compiled, sessions set up); ``infer``: on the inference thread, a
    batch of queued items -> the results queued for the publisher; ``publisher``: built on
    that queue, with the hooks that follow its detections (``[array]`` bearings; a kind
    that refuses ``[array]`` gets none); ``parts``: health sections."""

    windows: WindowCutter
    warm_up: Callable[[], None]
    infer: Callable[[list[object]], Sequence[object]]
    publisher: Callable[[queue.Queue[object], Sequence[DetectionHook]], LivePublisher]
    parts: list[Callable[[], Part | None]] = field(default_factory=list)
    spectrum_fmax_hz: float = 500.0


@dataclass(frozen=True)
class Uses:
    """What a run asks of the model beside its detections (checked by :meth:`refuse`)."""

    array: bool = False  # [array] bearings and channel agreement
    score_table: bool = False  # analyze --scores
    cluster: bool = False  # analyze --cluster


class OutputKind(Protocol):
    """One kind of model output (see the module docstring)."""

    model: ModelConfig  # its [model] settings
    noun: str  # what it reports, plural: "detection(s)", "call(s)"
    name: str  # the model's (or the ensemble's) name, for log lines
    version: str
    activity: ActivityGate | None  # an activity gate's counts over analyze's inputs

    def with_thresholds(self, threshold: float | None,
                        detection_threshold: float | None) -> OutputKind:
        """The kind with ``analyze``'s ``--threshold`` (window scores, every detecting
        class) or ``--detection-threshold`` (calls) applied; refused where it has no
        meaning."""
        ...

    def clustered(self) -> ModelPackage:
        """The one model ``analyze --cluster`` scores (its workers merge like a single
        model); refused in one line by kinds the cluster cannot run yet."""
        ...

    def refuse(self, uses: Uses) -> None:
        """Raise one-line :class:`~pamlive.errors.ConfigError` for what this kind cannot do."""
        ...

    def live(self, ctx: LiveContext) -> LiveStages:
        """Its stages in the live engine (refuses what cannot run live, before capture)."""
        ...

    def detectors(self) -> Callable[[int, int, Any], Detector]:
        """``pamlive analyze``: a detector per input (rate, channels, score-table sink)."""
        ...

    @property
    def analyze_file(self) -> FileAnalysis:
        """``analyze``'s routine for one input: detections, or calls, into its table."""
        ...

    def hop_frames(self, input_rate: int) -> int | None:
        """The window hop in input frames (analyze reads whole hops), None: no common one."""
        ...

    def score_table(self, target: Path, audio: Path, input_rate: int,
                    start_utc: datetime | None) -> ScoreTable:
        """``analyze --scores``: the per-window score table of one input."""
        ...
