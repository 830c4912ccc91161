"""The simulated array through the detector, scored against its ground truth.

Shared by ``benchmarks/bench_bearings.py`` (the full table) and the acceptance test
(a small sample): the simulator's audio goes through the same detection pipeline as
``pamlive analyze``, each detection gets its bearing from the same audio, and is then
matched to the simulated call or transient it overlaps most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pamlive.array.bearing import BearingEstimator, BearingResult
from pamlive.config import ArraySettings, SimulatorConfig
from pamlive.detection import Detection
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage
from pamlive.pipeline import StreamDetector
from pamlive.sources.simulator import SimulatedArray, SimulatedCall, SimulatedTransient

BLOCK = 1 << 16


@dataclass(frozen=True)
class Outcome:
    """One detection: what it matched (a call, a transient or nothing) and its bearing."""

    det: Detection
    result: BearingResult
    call: SimulatedCall | None
    transient: SimulatedTransient | None


@dataclass(frozen=True)
class Trial:
    outcomes: list[Outcome]
    calls: list[SimulatedCall]  # those wholly inside the run
    transients: list[SimulatedTransient]
    seconds: float


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def run_trial(sim: SimulatorConfig, settings: ArraySettings, package: ModelPackage,
              seconds: float, *, hop_s: float = 1.0, max_merge: int = 10) -> Trial:
    """``seconds`` of the simulator through the detector; every detection located."""
    array = SimulatedArray(sim)
    fs, total = array.sample_rate, round(seconds * array.sample_rate)
    detector = StreamDetector(package, Classifier(package), fs, array.channels, hop_s=hop_s,
                              max_merge=max_merge)
    audio = np.empty((total, array.channels), np.float32)
    found: list[Detection] = []
    for start in range(0, total, BLOCK):
        block = array.read(min(BLOCK, total - start))
        audio[start: start + block.shape[0]] = block
        found.extend(detector.push(block))
    found.extend(detector.finish())
    estimator = BearingEstimator(settings)
    calls = [c for c in array.ground_truth if c.end_sample <= total]
    transients = [t for t in array.transients if t.end_sample <= total]
    outcomes = []
    for det in found:
        result = estimator.for_detection(det, audio[det.start_sample: det.end_sample])
        call = max(calls, default=None, key=lambda c: _overlap(
            c.start_sample, c.end_sample, det.start_sample, det.end_sample))
        if call is not None and not _overlap(call.start_sample, call.end_sample,
                                             det.start_sample, det.end_sample):
            call = None
        hits = [t for t in transients if _overlap(t.start_sample, t.end_sample,
                                                  det.start_sample, det.end_sample)]
        outcomes.append(Outcome(det, result, call, hits[0] if hits else None))
    return Trial(outcomes, calls, transients, seconds)


def angle_error(a: float, b: float) -> float:
    """Smallest absolute difference of two bearings, degrees (0..180)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def bearing_error(outcome: Outcome) -> float | None:
    """Degrees from the true bearing (a line array: from the nearer candidate)."""
    b = outcome.result.relative
    if b is None or outcome.call is None:
        return None
    candidates = b.candidates_deg or (b.bearing_deg,)
    return min(angle_error(c, outcome.call.bearing_deg) for c in candidates)


def cone_error(outcome: Outcome, axis_deg: float) -> float | None:
    """Line arrays: degrees between the reported and the true cone angle."""
    b = outcome.result.relative
    if b is None or b.cone_deg is None or outcome.call is None:
        return None
    return abs(b.cone_deg - angle_error(outcome.call.bearing_deg, axis_deg))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan
