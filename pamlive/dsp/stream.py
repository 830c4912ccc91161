"""A chain over a stream of hop-spaced windows: every frame computed once.

Running the chain on each window recomputes each spectrogram frame ``segment / hop``
times. :class:`WindowFeatures` computes the chain's frame stage
(:attr:`~pamlive.dsp.chain.TransformChain.frame_steps`) once per frame of the continuous
stream (:class:`FrameStream`), assembles each window from those frames, and applies the
window stage (:attr:`~pamlive.dsp.chain.TransformChain.window_steps`) per window.

The numbers are those of :meth:`TransformChain.apply` on each window, bit for bit. A
window's frame ``j`` starts at ``W + starts(j)``; it is the stream frame
``W / hop + j`` when the window starts on the frame grid, except for

* the frames that run past the window's end (zero padded in the window: its own), and
* frame 0 when it differs from the stream's frame at the same place: with a fused
  pre-emphasis (``x[-1] = 0`` at a window's start) and with jpamutils' late framing
  (stream frames ``k >= 1`` start one sample late);

those "edge" frames are computed per window, from the window's samples. Windows off the
grid (a window hop that is not a multiple of the frame hop, the last window aligned to
the end of the stream) and chains without a frame stage run the whole chain per window.
"""

from __future__ import annotations

import numpy as np

from pamlive.dsp.chain import SpectrumStep, Step, TransformChain
from pamlive.dsp.features import Features

HOP_ADJUST = 0.01  # a window hop moves by at most 1 % onto the spectrogram's frame grid


def frame_aligned_hop(chain: TransformChain, hop: int) -> int:
    """``hop`` (samples at the chain's rate) as a whole number of spectrogram hops when
    that moves it by at most :data:`HOP_ADJUST`, so that windows share frames (a 0.25 s
    hop at 250 kHz with 128-sample frames becomes 0.249856 s); otherwise ``hop``."""
    spectrum = chain.frame_steps[0] if chain.frame_steps else None
    if not isinstance(spectrum, SpectrumStep):
        return hop
    aligned = max(1, round(hop / spectrum.plan.hop)) * spectrum.plan.hop
    return aligned if abs(aligned - hop) <= HOP_ADJUST * hop else hop


class FrameStream:
    """The frame stage on one continuous multichannel stream at the chain's rate.

    ``push`` takes ``(channels, samples)``; :meth:`update` computes every frame they
    complete (frame ``k`` starts at ``plan.starts(k)``), in one batch however many blocks
    came since; the frames stay until :meth:`release`.
    """

    def __init__(self, steps: list[Step], channels: int, sample_rate: float) -> None:
        spectrum = steps[0]
        assert isinstance(spectrum, SpectrumStep)
        self.spectrum, self.per_frame = spectrum, steps[1:]
        self.sample_rate = float(sample_rate)
        probe = self.finish(np.zeros((1, 1, spectrum.freqs.size), np.float32))
        self.freqs, bins = probe.freqs, probe.data.shape[-1]
        self._samples = np.zeros((channels, 0), np.float32)
        self._samples_start = 0  # stream index of _samples[:, 0]
        self._pending: list[np.ndarray] = []  # blocks pushed since the last update
        self._received = 0
        self.frames = np.zeros((channels, 0, bins), np.float32)
        self.first = 0  # stream frame index of frames[:, 0]
        self.computed = 0  # frames computed (per channel)

    def finish(self, frames: np.ndarray) -> Features:
        """The per-frame transforms after the spectrogram, on ``(n, frames, bins)``."""
        f = Features(frames, self.sample_rate, self.spectrum.freqs)
        for step in self.per_frame:
            f = step.run(f)
        return f

    @property
    def end(self) -> int:
        """One past the last frame computed."""
        return self.first + self.frames.shape[1]

    def push(self, samples: np.ndarray) -> None:
        self._pending.append(samples)
        self._received += samples.shape[1]

    def update(self) -> None:
        plan = self.spectrum.plan
        count = plan.frames_within(self._received) - self.end
        if count <= 0:
            return
        self._samples = np.concatenate([self._samples, *self._pending], axis=1)
        self._pending = []
        starts = plan.starts(self.end, count) - self._samples_start
        new = self.finish(self.spectrum.frames_at(self._samples, starts)).data
        self.frames = np.concatenate([self.frames, new], axis=1)
        self.computed += count
        # the next frame reads from its start (one sample before it with a pre-emphasis)
        keep_from = int(plan.starts(self.end, 1)[0]) - 1
        drop = min(max(keep_from - self._samples_start, 0), self._samples.shape[1])
        self._samples = self._samples[:, drop:]
        self._samples_start += drop

    def release(self, before: int) -> None:
        """Forget the frames before stream frame ``before``."""
        drop = min(max(before - self.first, 0), self.frames.shape[1])
        self.frames = self.frames[:, drop:]
        self.first += drop


class WindowFeatures:
    """The chain's output for windows of ``segment`` samples cut every ``hop`` samples
    (both at the chain's rate) from one stream; feed the stream with :meth:`push`."""

    def __init__(self, chain: TransformChain, channels: int, segment: int, hop: int) -> None:
        self.chain, self.channels, self.segment = chain, channels, segment
        self.stream: FrameStream | None = None
        self.computed_per_window = 0  # frames computed for single windows (per channel)
        spectrum = chain.frame_steps[0] if chain.frame_steps else None
        if not isinstance(spectrum, SpectrumStep) or hop % spectrum.plan.hop:
            return
        self.stream = FrameStream(chain.frame_steps, channels, chain.sample_rate)
        self.spectrum, self.frame_hop = spectrum, spectrum.plan.hop
        self.n_frames = spectrum.frame_count(segment)
        starts = spectrum.plan.starts(0, self.n_frames)
        own = starts + spectrum.plan.fft > segment  # zero padded past the window's end
        own[0] |= spectrum.pre_emphasis != 0.0 or spectrum.plan.late_frames
        shared = np.flatnonzero(~own)  # a run: the head frame and the tail frames are own
        self.shared = slice(int(shared[0]), int(shared[-1]) + 1) if shared.size else slice(0, 0)
        # own frames, in two groups read from short pieces of the window: frame 0 (from
        # the window's first sample: x[-1] = 0) and the tail (from one sample before it)
        self.head = bool(own[0]) and not own[1:].all()  # (else frame 0 reads with the tail)
        self.tail = np.flatnonzero(own)[1:] if self.head else np.flatnonzero(own)
        self.tail_from = max(int(starts[self.tail].min()) - 1, 0) if self.tail.size else 0

    @property
    def frames_computed(self) -> int:
        """Spectrogram frames computed so far, per channel (each stream frame once)."""
        shared = self.stream.computed if self.stream is not None else 0
        return shared + self.computed_per_window

    def push(self, samples: np.ndarray) -> None:
        """The next ``(samples, channels)`` of the stream at the chain's rate."""
        if self.stream is not None and samples.shape[0]:
            self.stream.push(samples.T)

    def release(self, next_start: int) -> None:
        """No window will start before stream sample ``next_start``."""
        if self.stream is not None:
            self.stream.release(next_start // self.frame_hop)

    def windows(self, starts: list[int], buf: np.ndarray, buf_start: int) -> np.ndarray:
        """Features ``(windows, channels, ...)`` of the windows starting at stream samples
        ``starts``; ``buf`` ``(samples, channels)`` holds the stream from ``buf_start``."""
        at = np.asarray(starts)
        if self.stream is None:
            return self._per_window(at, buf, buf_start)
        on_grid = at % self.frame_hop == 0
        if on_grid.all():
            return self._from_frames(at, buf, buf_start)
        out: np.ndarray | None = None
        for mask, run in ((on_grid, self._from_frames), (~on_grid, self._per_window)):
            if mask.any():
                part = run(at[mask], buf, buf_start)
                if out is None:
                    out = np.empty((len(starts), *part.shape[1:]), np.float32)
                out[mask] = part
        assert out is not None
        return out

    def _pieces(self, at: np.ndarray, buf: np.ndarray, buf_start: int, lo: int,
                hi: int) -> np.ndarray:
        """Samples ``lo .. hi-1`` of each window, as rows ``(windows * channels, hi - lo)``
        (one copy, window by window: an index array would copy twice)."""
        out = np.empty((at.size, buf.shape[1], hi - lo), buf.dtype)
        for rows, first in zip(out, at - buf_start + lo, strict=True):
            rows[:] = buf[first:first + hi - lo].T
        return out.reshape(-1, hi - lo)

    def _per_window(self, at: np.ndarray, buf: np.ndarray, buf_start: int) -> np.ndarray:
        """The whole chain on each window (no frame stage, or a window off the grid)."""
        if self.stream is not None:
            self.computed_per_window += self.n_frames * at.size
        out = self.chain.apply(self._pieces(at, buf, buf_start, 0, self.segment))
        return out.reshape(at.size, self.channels, *out.shape[1:])

    def _from_frames(self, at: np.ndarray, buf: np.ndarray, buf_start: int) -> np.ndarray:
        stream, spectrum = self.stream, self.spectrum
        assert stream is not None
        stream.update()
        frames = np.empty((at.size, self.channels, self.n_frames, stream.frames.shape[2]),
                          np.float32)
        n_shared = self.shared.stop - self.shared.start
        for i, first in enumerate(at // self.frame_hop + self.shared.start - stream.first):
            frames[i, :, self.shared] = stream.frames[:, first : first + n_shared]
        if self.head:
            x = self._pieces(at, buf, buf_start, 0, min(spectrum.plan.fft, self.segment))
            own = stream.finish(spectrum.frames_at(x, np.zeros(1, np.int64))).data
            frames[:, :, 0] = own.reshape(at.size, self.channels, -1)
        if self.tail.size:
            x = self._pieces(at, buf, buf_start, self.tail_from, self.segment)
            starts = spectrum.plan.starts(0, self.n_frames)[self.tail] - self.tail_from
            own = stream.finish(spectrum.frames_at(x, starts)).data
            frames[:, :, self.tail] = own.reshape(at.size, self.channels, *own.shape[1:])
        self.computed_per_window += (self.tail.size + self.head) * at.size
        out = self.chain.run_steps(self.chain.window_steps,
                                   frames.reshape(-1, *frames.shape[2:]), stream.freqs)
        return out.reshape(at.size, self.channels, *out.shape[1:])
