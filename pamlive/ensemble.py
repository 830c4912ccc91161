"""Model ensembles: several model packages on one stream, fused per class in time.

Each member runs its own :class:`~pamlive.windows.Windower` (its own sample rate, window
length and hop) and its own classifier on the same input stream. Their scores meet on a
common time grid and are fused per class (:mod:`pamlive.fusion`); the fused windows go
through PAMGuard's merge rule like a single model's.

Time alignment (causal, so alerts stay prompt):

* The grid is the window END times of the *lead* member: the one with the finest hop
  (the first listed among equals). A fused window is numbered like its lead window, so
  the merge rule sees consecutive grid points as consecutive windows.
* At grid time ``E`` each member contributes its most recent window that ended at or
  before ``E`` and less than one of its hops before ``E`` (as a member's latest window
  always does while its windows keep coming). Nothing from after ``E`` is used, so a
  fused decision at ``E`` needs only audio up to ``E``: no member waits for another's
  future window.
* A member with no such window (it has not produced a window yet because its window is
  longer than the lead's, or after a gap in the stream, or its windows were dropped) is
  *missing* at ``E``: it brings no evidence (0 in ``mean``; below threshold in the vote
  rules). At the start of a stream an ``all`` ensemble therefore first detects once
  every member has a full window.
* A grid point is decided once every member can no longer produce a window ending at or
  before ``E`` (its next window ends at least one hop after its last one, or its first
  one at least a window length after the stream start); at the end of the stream every
  pending point is decided.
* The fused window spans from the earliest start of the windows that contributed to
  ``E``; its channels' scores are fused channel by channel.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from pamlive.config import FusionConfig, ModelConfig
from pamlive.detection import Detection, Onset, WindowMerger
from pamlive.errors import ConfigError
from pamlive.fusion import VOTE_THRESHOLD, fuse
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.pipeline import classify_windows, merged_thresholds
from pamlive.windows import SegmentWindower, Window, Windower, make_windower

# the rule for a detecting class that [model.fusion] does not name
DEFAULT_RULE: Literal["all"] = "all"

Part = tuple[Window, np.ndarray]  # a member's window and its scores (channels, its classes)
Aligned = tuple[Window, list[Part | None]]  # a lead window and each member's part, or missing


@dataclass
class Member:
    """One model of an ensemble and how its classes map onto the ensemble's."""

    name: str  # unique within the ensemble (score table column prefix)
    package: ModelPackage
    classifier: Classifier
    hop_s: float
    thresholds: dict[str, float]  # the member's own class -> threshold
    columns: list[int | None]  # ensemble class -> this member's score column (None: none)

    def windower(self, input_rate: int, channels: int) -> Windower | SegmentWindower:
        return make_windower(self.package, input_rate, channels, self.hop_s)

    @property
    def window_hop_s(self) -> float:
        """The hop as the windower makes it (whole samples at the model's rate)."""
        rate = self.package.sample_rate
        return self.windower(rate, 1).hop / rate

    def hop_in(self, input_rate: int) -> float:
        """The hop in input samples."""
        return self.window_hop_s * input_rate

    def segment_in(self, input_rate: int) -> float:
        return self.package.segment_samples * input_rate / self.package.sample_rate


@dataclass(frozen=True)
class ClassFusion:
    rule: str
    threshold: float  # on the fused score
    k: int | None
    members: list[int]  # members that score this class, in member order
    member_thresholds: list[float]


@dataclass
class FusedWindow:
    index: int  # the lead window's number
    start_sample: int  # input-stream index, inclusive
    end_sample: int  # input-stream index, exclusive (the grid time)
    ready_sample: int
    scores: np.ndarray  # fused, (channels, ensemble classes)
    parts: list[Part | None]  # per member: window and scores, or missing


@dataclass
class Ensemble:
    members: list[Member]
    class_names: list[str]
    binary: dict[str, bool]
    freq_range: tuple[float, float] | None
    fusion: dict[str, ClassFusion]

    @property
    def lead(self) -> int:
        """The member with the finest hop (as its windower rounds it), first among equals."""
        hops = [m.window_hop_s for m in self.members]
        return hops.index(min(hops))

    def aligner(self, input_rate: int, stall_s: float | None = None) -> Aligner:
        return Aligner([m.hop_in(input_rate) for m in self.members],
                       [m.segment_in(input_rate) for m in self.members], self.lead,
                       None if stall_s is None else stall_s * input_rate)

    def merger(self, input_rate: int, max_merge: int) -> WindowMerger:
        return WindowMerger(self.class_names, {c: f.threshold for c, f in self.fusion.items()},
                            self.binary, max_merge, input_rate, self.freq_range)

    def fuse(self, lead: Window, parts: list[Part | None]) -> FusedWindow:
        present = [p for p in parts if p is not None]
        channels = present[0][1].shape[0]
        fused = np.zeros((channels, len(self.class_names)))
        for ci, name in enumerate(self.class_names):
            f = self.fusion[name]
            stack = np.full((len(f.members), channels), np.nan)
            for row, m in enumerate(f.members):
                part = parts[m]
                column = self.members[m].columns[ci]
                if part is not None and column is not None:
                    stack[row] = part[1][:, column]
            fused[:, ci] = fuse(f.rule, stack, f.member_thresholds, f.k)
        return FusedWindow(lead.index, min(w.start_sample for w, _ in present), lead.end_sample,
                           max(w.ready_sample for w, _ in present), fused, parts)


class Aligner:
    """Member windows in (each member in stream order), grid-aligned member parts out."""

    def __init__(self, hops_in: Sequence[float], segments_in: Sequence[float],
                 lead: int, stall_in: float | None = None) -> None:
        """``stall_in`` (live only): a grid point this many input samples behind the lead's
        newest window is decided without the members that have not caught up (a member
        whose every batch fails must not hold the others' alerts)."""
        self._hops = list(hops_in)
        self._stall = stall_in
        self._first_end = list(segments_in)
        self._lead = lead
        self._queues: list[deque[Part]] = [deque() for _ in self._hops]
        self._last_end: list[int | None] = [None] * len(self._hops)
        self._grid: deque[Window] = deque()

    def add(self, member: int, windows: Sequence[Window], scores: np.ndarray) -> None:
        """``scores``: ``(windows, channels, member classes)``."""
        for w, s in zip(windows, scores, strict=True):
            light = replace(w, features=np.empty(0, np.float32))  # only times are kept
            self._queues[member].append((light, s))
            self._last_end[member] = w.end_sample
            if member == self._lead:
                self._grid.append(light)

    def ready(self, final: bool = False) -> list[Aligned]:
        """The grid points every member has decided (all of them when ``final``)."""
        out = []
        while self._grid:
            end = self._grid[0].end_sample
            if not (final or self._stalled(end)) and any(
                    self._next_end_bound(m) <= end for m in range(len(self._hops))):
                break
            lead = self._grid.popleft()
            out.append((lead, [self._latest(m, end) for m in range(len(self._hops))]))
        return out

    def _stalled(self, end: int) -> bool:
        newest = self._last_end[self._lead]
        return self._stall is not None and newest is not None and newest - end > self._stall

    def _next_end_bound(self, m: int) -> float:
        """No window of member ``m`` still to come ends before this input sample."""
        last = self._last_end[m]
        return self._first_end[m] - 1 if last is None else last + self._hops[m] - 1

    def _latest(self, m: int, end: int) -> Part | None:
        q = self._queues[m]
        while len(q) >= 2 and q[1][0].end_sample <= end:
            q.popleft()
        # a regular member's latest window ends less than one hop before ``end``
        if q and end - self._hops[m] < q[0][0].end_sample <= end:
            return q[0]
        return None


FusedScoreSink = Callable[[FusedWindow, np.ndarray], None]


class EnsembleMerger:
    """Scored member windows in, closed detections out: alignment, fusion, merge rule.

    The merge stage of an ensemble, for ``pamlive analyze`` and the live engine alike:
    feed each member's scored windows in that member's stream order (members may
    interleave freely); ``on_scores`` sees every :class:`FusedWindow` before it is merged;
    ``missing[m]`` counts the grid points member ``m`` was missing at; ``stall_s``: see
    :class:`Aligner` (live only).
    """

    def __init__(self, ensemble: Ensemble, input_rate: int, max_merge: int,
                 on_scores: FusedScoreSink | None = None, stall_s: float | None = None
                 ) -> None:
        self.ensemble = ensemble
        self.aligner = ensemble.aligner(input_rate, stall_s)
        self.merger = ensemble.merger(input_rate, max_merge)
        self.on_scores = on_scores
        self.missing = [0] * len(ensemble.members)

    def push(self, member: int, windows: Sequence[Window], scores: np.ndarray
             ) -> list[Detection]:
        """``scores``: ``(windows, channels, the member's classes)``."""
        return [e for e in self.push_events(member, windows, scores)
                if isinstance(e, Detection)]

    def push_events(self, member: int, windows: Sequence[Window], scores: np.ndarray
                    ) -> list[Onset | Detection]:
        """As :meth:`push`, with the onsets of the detections that open (live alerts)."""
        self.aligner.add(member, windows, scores)
        return self._merge(final=False)

    def flush(self, end_sample: int) -> list[Detection]:
        """End of stream: decide every pending grid point, close every open detection."""
        return [e for e in self.flush_events(end_sample) if isinstance(e, Detection)]

    def flush_events(self, end_sample: int) -> list[Onset | Detection]:
        """As :meth:`flush`, with the onsets of the last grid points."""
        return [*self._merge(final=True), *self.merger.flush(end_sample)]

    def _merge(self, final: bool) -> list[Onset | Detection]:
        found: list[Onset | Detection] = []
        for lead, parts in self.aligner.ready(final):
            for m, part in enumerate(parts):
                self.missing[m] += part is None
            fw = self.ensemble.fuse(lead, parts)
            if self.on_scores is not None:
                self.on_scores(fw, fw.scores)
            found.extend(self.merger.push_events(fw.index, fw.start_sample, fw.end_sample,
                                                 fw.scores))
        return found


def classify_members(ensemble: Ensemble, items: Sequence[tuple[int, Window]]
                     ) -> list[tuple[int, list[Window], np.ndarray]]:
    """A batch of (member, window) in any mix, scored member by member in one batch each:
    ``(member, its windows in batch order, scores (windows, channels, its classes))``."""
    out = []
    for m in sorted({m for m, _ in items}):
        windows = [w for i, w in items if i == m]
        out.append((m, windows, classify_windows(ensemble.members[m].classifier, windows)))
    return out


class EnsembleDetector:
    """Members' Windowers -> Classifiers -> :class:`EnsembleMerger`, synchronously.

    The same interface as :class:`pamlive.pipeline.StreamDetector` (``pamlive analyze``);
    ``on_scores`` receives every :class:`FusedWindow` and its fused scores.
    """

    def __init__(self, ensemble: Ensemble, input_rate: int, channels: int, *,
                 max_merge: int = 10, on_scores: FusedScoreSink | None = None) -> None:
        self.ensemble = ensemble
        self.windowers = [m.windower(input_rate, channels) for m in ensemble.members]
        self.merger = EnsembleMerger(ensemble, input_rate, max_merge, on_scores)
        self.samples_in = 0

    def push(self, block: np.ndarray) -> list[Detection]:
        self.samples_in += block.shape[0]
        return self._score([(i, w) for i, wr in enumerate(self.windowers)
                            for w in wr.push(block)])

    def finish(self) -> list[Detection]:
        found = self._score([(i, w) for i, wr in enumerate(self.windowers) for w in wr.flush()])
        return found + self.merger.flush(self.samples_in)

    def _score(self, items: list[tuple[int, Window]]) -> list[Detection]:
        found: list[Detection] = []
        for member, windows, scores in classify_members(self.ensemble, items):
            found += self.merger.push(member, windows, scores)
        return found


def load_ensemble(model: ModelConfig) -> Ensemble:
    """Load every ``[[model.members]]`` package and check the fusion table against them."""
    members: list[Member] = []
    names: set[str] = set()
    for i, mc in enumerate(model.members):
        package = load_model_package(mc.path)
        if package.events is not None:
            raise ConfigError(f"[[model.members]] #{i + 1} ({mc.path}) is an event model (it "
                              "reports calls, not window scores): an ensemble fuses window "
                              "scores; run it on its own as [model] path")
        classifier = Classifier(package, threads=model.threads)
        classifier.check_features(package.chain().output_shape(package.segment_samples))
        where = f"[[model.members]] #{i + 1} ({mc.path})"
        try:
            thresholds = merged_thresholds(package, mc.thresholds)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        name = package.name
        while name in names:
            name = f"{name}#{i + 1}"
        names.add(name)
        members.append(Member(name, package, classifier, mc.hop_s or model.hop_s, thresholds,
                              []))
    # the first member names the ensemble's classes (renamed by its own classes table)
    first = members[0].package
    renamed = {own: name for name, own in model.members[0].classes.items()}
    classes = [renamed.get(c, c) for c in first.class_names]
    binary = {renamed.get(c, c): on for c, on in first.binary.items()}
    for i, (m, mc) in enumerate(zip(members, model.members, strict=True)):
        m.columns = _columns(classes, m.package, mc.classes, f"[[model.members]] #{i + 1} classes")
    unknown = set(model.fusion) - set(classes)
    if unknown:
        raise ConfigError(f"[model.fusion] names unknown class(es) {', '.join(sorted(unknown))}; "
                          f"the ensemble's classes are {', '.join(classes)}")
    fusion = {c: _class_fusion(c, ci, binary[c], model.fusion.get(c), members)
              for ci, c in enumerate(classes)}
    return Ensemble(members, classes, binary, first.freq_range, fusion)


def _columns(classes: Sequence[str], package: ModelPackage, mapping: dict[str, str],
             where: str) -> list[int | None]:
    bad = set(mapping) - set(classes)
    if bad:
        raise ConfigError(f"{where}: unknown ensemble class(es) {', '.join(sorted(bad))}")
    missing = set(mapping.values()) - set(package.class_names)
    if missing:
        raise ConfigError(f"{where}: {package.name} has no class {', '.join(sorted(missing))} "
                          f"(its classes: {', '.join(package.class_names)})")
    own = [mapping.get(c, c) for c in classes]
    return [package.class_names.index(c) if c in package.class_names else None for c in own]


def _class_fusion(name: str, ci: int, binary: bool, cfg: FusionConfig | None,
                  members: list[Member]) -> ClassFusion:
    cfg = cfg or FusionConfig(rule=DEFAULT_RULE if binary else "mean")
    scoring = [i for i, m in enumerate(members) if m.columns[ci] is not None]
    thresholds = [members[i].thresholds[members[i].package.class_names[column]]
                  for i in scoring if (column := members[i].columns[ci]) is not None]
    if cfg.rule == "k_of_n" and not 1 <= (cfg.k or 0) <= len(scoring):
        raise ConfigError(f"[model.fusion] {name}: k must be 1..{len(scoring)} (the members "
                          f"that score {name}), got {cfg.k}")
    if cfg.rule == "mean":
        threshold = cfg.threshold if cfg.threshold is not None else float(np.mean(thresholds))
    else:
        threshold = VOTE_THRESHOLD
    return ClassFusion(cfg.rule, threshold, cfg.k if cfg.rule == "k_of_n" else None, scoring,
                       thresholds)
