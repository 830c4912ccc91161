"""The ensemble kind: several window-score models on one stream, their scores aligned in
time and fused per class before the merge rule (``pamlive/ensemble.py``,
docs/ensembles.md). It is the window-score kind's stages once per member, joined at the
merge: each member's windows are cut, batched and scored as a single model's, and a
member whose windows are dropped or fail is *missing* at the grid points they would have
served; it never holds the others."""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from pamlive.analyze_file import detections_file
from pamlive.buffers import RingBuffer
from pamlive.calls.gate import ActivityGate
from pamlive.config import ModelConfig
from pamlive.ensemble import Ensemble, EnsembleDetector, EnsembleMerger, FusedScoreSink
from pamlive.errors import ConfigError
from pamlive.inference.package import ModelPackage
from pamlive.kinds.base import LiveContext, LiveStages, Uses
from pamlive.kinds.scores import SPECTRUM_FMAX_HZ, refuse_window_scores_misuse
from pamlive.live.health import Part
from pamlive.live.publish import DetectionHook, Publisher
from pamlive.live.windowing import GapTolerantWindows, warm_up
from pamlive.pipeline import classify_windows
from pamlive.scores import ScoreTable
from pamlive.windows import SegmentWindower, Window, Windower

log = logging.getLogger(__name__)

# live: a grid point this far behind the lead's newest window is decided without the
# members that have not caught up; healthy members lag the lead by about a second (the
# windowing thread's chunk), a member whose every batch fails would hold alerts for ever
STALL_S = 5.0
LATENCIES = 64  # recent windows each member's latency figures are taken over


@dataclass(frozen=True)
class EnsembleInfo:
    """The ensemble as alerts name it: ``narw-upcall+koogu-narw``, versions likewise."""

    name: str
    version: str


class MemberStats:
    """Per member: windows scored, windows lost to failed batches and CPU seconds (written
    by the inference thread), latency from a window's last sample to its merge (engine
    thread)."""

    def __init__(self, n: int) -> None:
        self.windows = [0] * n
        self.errors = [0] * n
        self.cpu_s = [0.0] * n
        self.latency_ms: list[deque[float]] = [deque(maxlen=LATENCIES) for _ in range(n)]


class MemberWindows:
    """The windowing thread's cutter: every block to each member's gap-tolerant windower;
    queue items are ``(member, window)``."""

    def __init__(self, makers: Sequence[Callable[[], Windower | SegmentWindower]]) -> None:
        self.members = [GapTolerantWindows(make) for make in makers]

    def push(self, start_sample: int, block: np.ndarray) -> list[object]:
        return [(m, w) for m, cut in enumerate(self.members)
                for w in cut.push(start_sample, block)]

    def flush(self) -> list[object]:
        return [(m, w) for m, cut in enumerate(self.members) for w in cut.flush()]

    def frames_needed(self) -> int:
        """Stream samples after which some member's next window can be cut."""
        return min(cut.frames_needed() for cut in self.members)


class EnsembleMerge:
    """The engine thread's merge: a member's scored windows -> aligned, fused, merged."""

    def __init__(self, merger: EnsembleMerger, ring: RingBuffer, stats: MemberStats) -> None:
        self.merger = merger
        self.ring = ring
        self.stats = stats

    def push(self, item: object) -> tuple[Sequence[object], int]:
        member, windows, scores = cast(tuple[int, list[Window], np.ndarray], item)
        end = windows[-1].end_sample
        arrival = self.ring.arrival_time(end - 1)
        if arrival is not None:
            self.stats.latency_ms[member].append((time.monotonic() - arrival) * 1000.0)
        return self.merger.push_events(member, windows, scores), end

    def flush(self, end_sample: int) -> Sequence[object]:
        return self.merger.flush_events(end_sample)


class EnsembleKind:
    """``[[model.members]]``: an ensemble of window-score model packages."""

    noun = "detection(s)"
    activity: ActivityGate | None = None  # no activity gate

    def __init__(self, ensemble: Ensemble, model: ModelConfig) -> None:
        self.ensemble = ensemble
        self.model = model
        packages = [m.package for m in ensemble.members]
        self.name = "+".join(p.name for p in packages)
        self.version = "+".join(p.version for p in packages)

    analyze_file = staticmethod(detections_file)

    def hop_frames(self, input_rate: int) -> int | None:
        return None  # members hop differently: no common boundary

    def score_table(self, target: Path, audio: Path, input_rate: int,
                    start_utc: datetime | None) -> ScoreTable:
        return ScoreTable(target, audio, self.ensemble.class_names, self.ensemble,
                          input_rate, start_utc)

    def with_thresholds(self, threshold: float | None,
                        detection_threshold: float | None) -> EnsembleKind:
        if threshold is not None:
            raise ConfigError("--threshold does not apply to an ensemble: set each member's "
                              "thresholds (or a mean rule's threshold) in the config")
        refuse_window_scores_misuse("an ensemble", self.model,
                                    detection_threshold_flag=detection_threshold is not None)
        return self

    def refuse(self, uses: Uses) -> None:
        refuse_window_scores_misuse("an ensemble", self.model)
        if uses.cluster:
            self.clustered()

    def clustered(self) -> ModelPackage:
        raise ConfigError("--cluster runs one model for now: run an ensemble without "
                          "--cluster")

    def live(self, ctx: LiveContext) -> LiveStages:
        ensemble, rate, channels = self.ensemble, ctx.rate, ctx.channels
        makers = [(lambda m=m: m.windower(rate, channels)) for m in ensemble.members]
        stats = MemberStats(len(ensemble.members))

        def infer(items: list[object]) -> Sequence[object]:
            """Member by member, one batch each; a member whose batch fails loses those
            windows (missing at their grid points), the others go on."""
            pairs = cast(list[tuple[int, Window]], items)
            out: list[object] = []
            for m in sorted({m for m, _ in pairs}):
                windows = [w for i, w in pairs if i == m]
                t0 = time.thread_time()
                try:
                    scores = classify_windows(ensemble.members[m].classifier, windows)
                except Exception:
                    stats.errors[m] += len(windows)
                    log.exception("member %s failed on %d window(s)",
                                  ensemble.members[m].name, len(windows))
                    continue
                finally:
                    stats.cpu_s[m] += time.thread_time() - t0
                stats.windows[m] += len(windows)
                out.append((m, windows, scores))
            return out

        def warm() -> None:
            for make, member in zip(makers, ensemble.members, strict=True):
                warm_up(make, rate, channels, member.classifier.predict)

        def publisher(scored: queue.Queue[object], hooks: Sequence[DetectionHook]
                      ) -> Publisher:
            return Publisher(EnsembleMerge(merger, ctx.ring, stats), scored, ctx.bus,
                             package=EnsembleInfo(self.name, self.version),
                             station=ctx.config.station, utc=ctx.utc, ring=ctx.ring,
                             evidence=ctx.evidence, track=ctx.track, hooks=hooks,
                             on_detection=ctx.on_detection)

        merger = EnsembleMerger(ensemble, rate, self.model.max_merge, stall_s=STALL_S)
        fmax = min(m.package.sample_rate for m in ensemble.members) / 2
        return LiveStages(MemberWindows(makers), warm, infer, publisher,
                          parts=[lambda: members_part(ensemble, stats, merger.missing)],
                          spectrum_fmax_hz=min(fmax, SPECTRUM_FMAX_HZ))

    def detectors(self) -> Callable[[int, int, Any], EnsembleDetector]:
        """``pamlive analyze``: a detector per input (rate, channels, score sink)."""
        ensemble, model = self.ensemble, self.model
        return lambda rate, channels, sink: EnsembleDetector(
            ensemble, rate, channels, max_merge=model.max_merge,
            on_scores=cast(FusedScoreSink | None, sink))


def members_part(ensemble: Ensemble, stats: MemberStats, missing: Sequence[int]) -> Part:
    """The health section ``ensemble``: per member, windows scored and lost, grid points
    it was missing at, CPU seconds and share of the members' CPU, latency (median, p95
    ms) from a window's last sample to its merge. Flag ``ensemble.member_errors`` when a
    member lost windows to failed batches."""
    total = sum(stats.cpu_s) or 1.0
    rows: list[dict[str, Any]] = []
    for m, member in enumerate(ensemble.members):
        recent = list(stats.latency_ms[m])
        rows.append({
            "name": member.name, "windows": stats.windows[m], "errors": stats.errors[m],
            "missing": missing[m], "cpu_s": round(stats.cpu_s[m], 3),
            "cpu_share": round(stats.cpu_s[m] / total, 3),
            "latency_ms": {"median": round(float(np.median(recent)), 1),
                           "p95": round(float(np.percentile(recent, 95)), 1)}
            if recent else None})
    flags = ("ensemble.member_errors",) if any(stats.errors) else ()
    return Part("ensemble", {"members": rows}, flags)
