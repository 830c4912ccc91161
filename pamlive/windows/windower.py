"""One window cutter for every model: a window of ``segment_s`` every ``hop_s``, from the
samples one of two parts holds, with one of two ends of stream.

* samples: :class:`~pamlive.windows.stream.StreamCuts` (the stream resampled once, frames
  computed once) or :class:`~pamlive.windows.segments.SegmentCuts` (each segment cut at
  the input rate and resampled on its own, for a ``load_audio_scipy`` chain at another
  rate, as Ketos and PAMGuard do);
* end: a full window aligned to the end of the stream (score models), or the tail as one
  shorter window on the hop grid (event models: batdetect2 runs its network on the last,
  shorter chunk of a file as it is; with ``hop_s == segment_s`` these are its chunks).

Block sizes do not change the result, so the live monitor and ``analyze`` see the same
windows for the same audio.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.segment_resample import needs_segment_resampling
from pamlive.errors import ConfigError
from pamlive.inference.package import ModelPackage
from pamlive.windows.segments import SegmentCuts
from pamlive.windows.stream import StreamCuts
from pamlive.windows.window import Window, window_hop


class Windower:
    """Cut window ``k`` at ``k * hop - lead`` (samples at the chain's rate) once its
    samples are in; ``per_segment``: resample each window on its own; ``tail``: end with
    the partial tail window, not a full one aligned to the end of the stream."""

    def __init__(self, chain: TransformChain, input_rate: int, channels: int,
                 segment_s: float, hop_s: float, *, per_segment: bool = False,
                 lead_s: float = 0.0, tail: bool = False) -> None:
        if not (math.isfinite(hop_s) and math.isfinite(segment_s)):
            raise ConfigError(f"hop {hop_s} s and window {segment_s} s must be finite numbers")
        if per_segment and tail:
            raise ConfigError("windows resampled one by one end with a full window, "
                              "not a partial tail")
        self.chain = chain
        self.segment = round(segment_s * chain.sample_rate)
        self.hop = window_hop(chain, hop_s, share_frames=not per_segment)
        self.cuts: StreamCuts | SegmentCuts = (
            SegmentCuts(chain, input_rate, channels, self.segment) if per_segment
            else StreamCuts(chain, input_rate, channels, self.segment, self.hop))
        self.tail = tail
        # lead_s (a package's segment_lead_s): window k's segment starts lead_s before
        # k * hop_s, so its nominal window starts at k * hop_s, on the framework's grid;
        # windows whose segment would start before the stream are left out
        self.lead = round(lead_s * chain.sample_rate)
        self._next = -(-self.lead // self.hop)  # index of the next window

    @property
    def hop_s(self) -> float:
        """The hop in seconds actually used (moved onto the spectrogram's frames, if so)."""
        return self.hop / self.chain.sample_rate

    def push(self, block: np.ndarray) -> list[Window]:
        self.cuts.push(block)
        return self._cut(final=False)

    def frames_needed(self) -> int:
        """Input frames (counted from the first pushed) that complete the next window:
        the live windowing thread sleeps until the ring holds them."""
        return self.cuts.inputs_for(self._start(self._next))

    def flush(self) -> list[Window]:
        """End of stream: the remaining windows, then the end (see the class)."""
        self.cuts.flush(pad=not self.tail)
        if not self.tail:
            return self._cut(final=True)
        windows = self._cut(final=False)
        assert isinstance(self.cuts, StreamCuts)  # (refused in __init__ otherwise)
        cut = self.cuts.tail(self._start(self._next))
        if cut is None:
            return windows
        self._next += 1
        return [*windows, Window(self._next - 1, cut[0], cut[1], self.cuts.n_in, cut[2])]

    def _start(self, k: int) -> int:
        return k * self.hop - self.lead

    def _cut(self, final: bool) -> list[Window]:
        starts = []
        while self.cuts.complete(self._start(self._next)):
            starts.append(self._start(self._next))
            self._next += 1
        if final and (end := self.cuts.aligned_start(starts[-1] if starts else None)) is not None:
            starts.append(end)
            self._next += 1
        if not starts:
            return []
        first = self._next - len(starts)
        windows = [Window(first + i, a, b, self.cuts.n_in, f)
                   for i, (a, b, f) in enumerate(self.cuts.cut(starts))]
        self.cuts.release(self._start(self._next))
        return windows


class EventWindower(Windower):
    """The preset for event models: the tail ends the stream as a shorter window."""

    def __init__(self, chain: TransformChain, input_rate: int, channels: int,
                 segment_s: float, hop_s: float) -> None:
        super().__init__(chain, input_rate, channels, segment_s, hop_s, tail=True)


class SegmentWindower(Windower):
    """The preset for a ``load_audio_scipy`` chain on audio at another rate: each window
    cut at the input rate and resampled on its own, ``lead_s`` before its grid time."""

    def __init__(self, chain: TransformChain, input_rate: int, channels: int,
                 segment_s: float, hop_s: float, lead_s: float = 0.0) -> None:
        super().__init__(chain, input_rate, channels, segment_s, hop_s, per_segment=True,
                         lead_s=lead_s)


def make_windower(package: ModelPackage, input_rate: int, channels: int,
                  hop_s: float) -> Windower:
    """The windows a score model runs on: from the resampled stream, or, for a
    ``load_audio_scipy`` chain on audio at another rate, each resampled on its own."""
    chain = package.chain()
    if needs_segment_resampling(chain, input_rate):
        lead = float(package.extra.get("imported_from", {}).get("segment_lead_s", 0.0))
        return SegmentWindower(chain, input_rate, channels, package.segment_s, hop_s, lead)
    return Windower(chain, input_rate, channels, package.segment_s, hop_s)


def make_event_windower(package: ModelPackage, input_rate: int, channels: int,
                        hop_s: float) -> EventWindower:
    """The windows an event model runs on (its package's ``segment_s``, every ``hop_s``)."""
    return EventWindower(package.chain(), input_rate, channels, package.segment_s, hop_s)


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
