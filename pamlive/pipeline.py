"""Stream -> hop-spaced windows -> scores -> detections; shared by ``analyze`` and live.

:class:`Windower` resamples the multichannel stream once (state kept across blocks) and
cuts a window every ``hop_s``; the window's features are the chain's output for it,
with every spectrogram frame computed once (:class:`~pamlive.dsp.stream.WindowFeatures`),
so a finer hop costs little more than the frames. Block sizes do not change the result,
so the live monitor and ``analyze`` see the same windows for the same audio.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from pamlive.detection import Detection, WindowMerger
from pamlive.dsp.chain import TransformChain
from pamlive.dsp.segment_resample import SegmentWindower, needs_segment_resampling
from pamlive.dsp.stream import WindowFeatures, frame_aligned_hop
from pamlive.errors import ConfigError
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import ModelPackage


@dataclass
class Window:
    index: int  # window number in the stream
    start_sample: int  # input-stream index, inclusive
    end_sample: int  # input-stream index, exclusive
    ready_sample: int  # input samples received when the window became complete
    features: np.ndarray  # (channels, *feature_shape)


def window_hop(chain: TransformChain, hop_s: float) -> int:
    """The hop in model-rate samples that the :class:`Windower` uses for ``hop_s``."""
    hop = round(hop_s * chain.sample_rate)
    if hop < 1:
        raise ConfigError(f"hop {hop_s} s is shorter than one sample at {chain.sample_rate} Hz")
    return frame_aligned_hop(chain, hop)


def input_hop_frames(package: ModelPackage, input_rate: int, hop_s: float) -> int | None:
    """The window hop in input frames, or None where windows do not start on a grid of
    whole input frames: the hop is not a whole number of them, or the chain resamples each
    window on its own. Reads (and cluster chunks) that start on this grid see exactly the
    windows of a serial run."""
    chain = package.chain()
    if needs_segment_resampling(chain, input_rate):
        return None
    frames = Fraction(window_hop(chain, hop_s) * input_rate, package.sample_rate)
    return int(frames) if frames.denominator == 1 and frames > 0 else None


class Windower:
    """Cut a window of ``segment_s`` every ``hop_s`` from a resampled stream (a hop within
    1 % of a whole number of spectrogram hops is moved onto them: see
    :func:`~pamlive.dsp.stream.frame_aligned_hop`)."""

    def __init__(self, chain: TransformChain, input_rate: int, channels: int,
                 segment_s: float, hop_s: float) -> None:
        self.chain = chain
        self.channels = channels
        self.resampler = chain.resampler(input_rate, channels)
        rate = chain.sample_rate
        if not (math.isfinite(hop_s) and math.isfinite(segment_s)):
            raise ConfigError(f"hop {hop_s} s and window {segment_s} s must be finite numbers")
        self.segment = round(segment_s * rate)
        self.hop = window_hop(chain, hop_s)
        self.features = WindowFeatures(chain, channels, self.segment, self.hop)
        self._buf = np.zeros((0, channels), np.float32)
        self._buf_start = 0  # model-rate index of _buf[0]
        self._pending: list[np.ndarray] = []  # blocks after _buf, joined when a window is due
        self._end = 0  # model-rate samples received
        self._next = 0  # index of the next window
        self._covered = 0  # model-rate index up to which windows cover the stream
        self._n_in = 0

    def push(self, block: np.ndarray) -> list[Window]:
        self._n_in += block.shape[0]
        self._append(self.resampler.process(block))
        return self._cut(final=False)

    def frames_needed(self) -> int:
        """Input frames (counted from the first pushed) that complete the next window:
        the live windowing thread sleeps until the ring holds them."""
        return self.resampler.inputs_for(self._next * self.hop + self.segment)

    def flush(self) -> list[Window]:
        """End of stream: the remaining windows, plus one aligned to the end if the tail
        after the last full window would otherwise never be looked at. A stream shorter
        than one window (a clip from a call library) is padded with silence to one window:
        a call in it is looked at, not passed over without a word."""
        self._append(self.resampler.flush())
        if 0 < self._end < self.segment:
            self._append(np.zeros((self.segment - self._end, self.channels), np.float32))
        return self._cut(final=True)

    def _append(self, samples: np.ndarray) -> None:
        if samples.shape[0]:
            self._pending.append(samples)
            self._end += samples.shape[0]
            self.features.push(samples)

    def _cut(self, final: bool) -> list[Window]:
        end_of_data = self._end
        if not final and self._next * self.hop + self.segment > end_of_data:
            return []  # no window due: the blocks wait in _pending
        self._buf = np.concatenate([self._buf, *self._pending])
        self._pending = []
        starts = []
        while self._next * self.hop + self.segment <= end_of_data:
            starts.append(self._next * self.hop)
            self._next += 1
        covered = starts[-1] + self.segment if starts else self._covered
        if final and covered < end_of_data and end_of_data >= self.segment:
            starts.append(end_of_data - self.segment)
            self._next += 1
        if not starts:
            return []
        feats = self.features.windows(starts, self._buf, self._buf_start)
        first_index = self._next - len(starts)
        windows = [
            Window(first_index + i, self.resampler.input_index(s),
                   self.resampler.input_index(s + self.segment), self._n_in, feats[i])
            for i, s in enumerate(starts)
        ]
        self._covered = starts[-1] + self.segment
        # keep what the next regular window needs, and always the last segment's worth for
        # the window aligned to the end of the stream
        keep_from = min(self._next * self.hop, end_of_data - self.segment)
        drop = min(max(keep_from - self._buf_start, 0), self._buf.shape[0])
        self._buf = self._buf[drop:]
        self._buf_start += drop
        self.features.release(keep_from)
        return windows


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


def make_windower(package: ModelPackage, input_rate: int, channels: int,
                  hop_s: float) -> Windower | SegmentWindower:
    """The window cutter the package's chain asks for: the stream :class:`Windower`, or,
    for a ``load_audio_scipy`` chain on audio at another rate, the per-segment resampling
    cutter (each window resampled on its own, as Ketos and PAMGuard do)."""
    chain = package.chain()
    if needs_segment_resampling(chain, input_rate):
        lead = float(package.extra.get("imported_from", {}).get("segment_lead_s", 0.0))
        return SegmentWindower(chain, input_rate, channels, package.segment_s, hop_s, lead)
    return Windower(chain, input_rate, channels, package.segment_s, hop_s)


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
