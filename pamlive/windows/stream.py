"""Windows cut from the stream resampled once, every spectrogram frame computed once
(:class:`~pamlive.dsp.stream.WindowFeatures`): a finer hop costs little more than the
frames, and block sizes do not change the result."""

from __future__ import annotations

import numpy as np

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.stream import WindowFeatures

Cut = tuple[int, int, np.ndarray]  # input start, input end (exclusive), features


class StreamCuts:
    """The samples of a :class:`~pamlive.windows.windower.Windower` cutting the resampled
    stream; window starts are samples at the chain's rate."""

    def __init__(self, chain: TransformChain, input_rate: int, channels: int, segment: int,
                 hop: int) -> None:
        self.chain = chain
        self.channels = channels
        self.segment = segment
        self.resampler = chain.resampler(input_rate, channels)
        self.features = WindowFeatures(chain, channels, segment, hop)
        self.n_in = 0  # input frames received
        self._end = 0  # model-rate samples received
        self._covered = 0  # model-rate index up to which windows cover the stream
        self._buf = np.zeros((0, channels), np.float32)
        self._buf_start = 0  # model-rate index of _buf[0]
        self._pending: list[np.ndarray] = []  # blocks after _buf, joined when a window is due

    def push(self, block: np.ndarray) -> None:
        self.n_in += block.shape[0]
        self._append(self.resampler.process(block))

    def flush(self, pad: bool) -> None:
        """End of stream; ``pad``: a stream shorter than one window is padded with silence
        to one window (a clip from a call library is looked at, not passed over)."""
        self._append(self.resampler.flush())
        if pad and 0 < self._end < self.segment:
            self._append(np.zeros((self.segment - self._end, self.channels), np.float32))

    def complete(self, start: int) -> bool:
        return start + self.segment <= self._end

    def inputs_for(self, start: int) -> int:
        return self.resampler.inputs_for(start + self.segment)

    def aligned_start(self, last: int | None) -> int | None:
        """The start of a window aligned to the end of the stream, if the tail after the
        window starting at ``last`` (None: the windows cut before) would not be looked at."""
        covered = self._covered if last is None else last + self.segment
        end = self._end
        return end - self.segment if covered < end and end >= self.segment else None

    def cut(self, starts: list[int]) -> list[Cut]:
        feats = self.features.windows(starts, self._joined(), self._buf_start)
        self._covered = starts[-1] + self.segment
        index = self.resampler.input_index
        return [(index(s), index(s + self.segment), feats[i]) for i, s in enumerate(starts)]

    def tail(self, start: int) -> Cut | None:
        """The partial window from ``start`` to the end of the stream (its features from
        the chain on the shorter segment: another width), None if nothing is left."""
        if self._covered >= self._end or start >= self._end:
            return None
        tail = self._joined()[start - self._buf_start : self._end - self._buf_start]
        self._covered = self._end
        return (self.resampler.input_index(start), self.n_in,
                self.chain.apply(np.ascontiguousarray(tail.T)))

    def release(self, next_start: int) -> None:
        """Keep what the window at ``next_start`` needs, and always the last segment's
        worth for the window aligned to the end of the stream."""
        keep_from = min(next_start, self._end - self.segment)
        drop = min(max(keep_from - self._buf_start, 0), self._buf.shape[0])
        self._buf = self._buf[drop:]
        self._buf_start += drop
        self.features.release(keep_from)

    def _append(self, samples: np.ndarray) -> None:
        if samples.shape[0]:
            self._pending.append(samples)
            self._end += samples.shape[0]
            self.features.push(samples)

    def _joined(self) -> np.ndarray:
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending = []
        return self._buf
