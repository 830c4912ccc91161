"""Windows cut at the input rate and resampled one by one, as Ketos and PAMGuard's
``load_audio_scipy`` do (:mod:`pamlive.dsp.segment_resample`): a Ketos model saw its
training spectrograms made that way, and the stream resampler gives measurably different
scores near the band edge (docs/import-models.md)."""

from __future__ import annotations

import numpy as np

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.segment_resample import input_span, resample_segment
from pamlive.windows.stream import Cut


class SegmentCuts:
    """The samples of a :class:`~pamlive.windows.windower.Windower` cutting each window's
    segment at the input rate (Ketos' samples ``ceil(t * rate_in)`` to ``ceil((t + d) *
    rate_in)``); window starts are samples at the chain's rate."""

    def __init__(self, chain: TransformChain, input_rate: int, channels: int,
                 segment: int) -> None:
        self.chain = chain
        self.channels = channels
        self.segment = segment
        self.input_rate = int(input_rate)
        self.rate = chain.sample_rate
        self.n_in = 0  # input frames received
        self._covered = 0  # input index up to which windows cover the stream
        self._buf = np.zeros((0, channels), np.float32)
        self._buf_start = 0  # input index of _buf[0]

    def push(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32).reshape(-1, self.channels)
        self.n_in += block.shape[0]
        if block.shape[0]:
            self._buf = np.concatenate([self._buf, block])

    def flush(self, pad: bool) -> None:
        """End of stream: nothing is held back (segments are cut at the input rate)."""

    def complete(self, start: int) -> bool:
        return self._span(start)[1] <= self.n_in

    def inputs_for(self, start: int) -> int:
        return self._span(start)[1]

    def aligned_start(self, last: int | None) -> int | None:
        """The start of a window aligned to the end of the stream, if the tail after the
        window starting at ``last`` (None: the windows cut before) would not be looked at."""
        covered = self._covered if last is None else self._span(last)[1]
        end = self._end()
        return end - self.segment if covered < self.n_in and end >= self.segment else None

    def cut(self, starts: list[int]) -> list[Cut]:
        spans = [(a, min(b, self.n_in)) for a, b in map(self._span, starts)]
        segments = [self._buf[a - self._buf_start:b - self._buf_start].T for a, b in spans]
        self._covered = spans[-1][1]
        return [(a, b, self.chain.apply(resample_segment(s, self.input_rate, self.rate,
                                                         self.segment)))
                for (a, b), s in zip(spans, segments, strict=True)]

    def release(self, next_start: int) -> None:
        """Keep what the window at ``next_start`` needs, and what one aligned to the end
        of the stream would."""
        last = self._span(max(self._end() - self.segment, 0))[0]
        keep_from = min(self._span(next_start)[0], last)
        drop = min(max(keep_from - self._buf_start, 0), self._buf.shape[0])
        self._buf = self._buf[drop:]
        self._buf_start += drop

    def _span(self, start: int) -> tuple[int, int]:
        return input_span(start, self.segment, self.rate, self.input_rate)

    def _end(self) -> int:
        """Whole samples at the chain's rate received."""
        return self.n_in * self.rate // self.input_rate
