"""The transform chain run on a continuous stream, block by block.

Stream stage (state carried across blocks): ``load_audio`` / ``load_audio_scipy``
(polyphase resampler), ``pre_emph`` and ``filter_wav`` (filter state), ``spectrogram`` /
``spectrogramketos`` (frames that span block boundaries), ``freq_compression`` and every
per-frame spectrum transform (``freq_trim``, ``norm_row_sum``, ``amplitude_to_decibel``,
``spec_log10``, ``clamp``, ``normalize``). The stream stage stops at the first transform
that needs a whole segment (``trim``, ``normalize_wav``, ``normalize_min_max``,
``normalisestd``, ``reduce_tonal_noise*``, ``spec_resize``, ``norm_row_sum`` with
``pamguard_exact``); those run per segment in :meth:`ChainStream.finish_segment`.

Concatenating what :meth:`ChainStream.process` returns for any split of a signal into
blocks, plus :meth:`ChainStream.flush`, gives the same numbers as running the chain
offline on the whole (resampled) signal as one segment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pamlive.dsp.chain import SpectrumStep, Step, TransformSpec
from pamlive.dsp.features import Features
from pamlive.dsp.wave import filter_sos, sos_filter
from pamlive.errors import TransformError

if TYPE_CHECKING:
    from pamlive.dsp.chain import TransformChain


class _PreEmphasis:
    """``y[n] = x[n] - a x[n-1]`` with ``x[n-1]`` kept from the previous block."""

    def __init__(self, factor: float, channels: int) -> None:
        self.a = float(factor)
        self.last = np.zeros((channels, 1))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] == 0:
            return x
        prev = np.concatenate([self.last, x[:, :-1]], axis=1)
        self.last = x[:, -1:].copy()
        return x - self.a * prev


class _SosFilter:
    """Causal IIR with its state carried from block to block (``sosfilt`` with ``zi``)."""

    def __init__(self, sos: np.ndarray, channels: int) -> None:
        self.sos = sos
        self.zi = np.zeros((sos.shape[0], 2, channels))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] == 0:
            return x
        y, self.zi = sos_filter(self.sos, x, self.zi)
        return y


class _Framer:
    """Keeps the samples the next frames need; emits each frame once it is complete."""

    def __init__(self, step: SpectrumStep, channels: int) -> None:
        self.step = step
        self.buffer = np.zeros((channels, 0), np.float32)  # widened by float64 input
        self.buffer_start = 0  # stream index of buffer[:, 0]
        self.n_samples = 0  # samples received
        self.next_frame = 0

    def _emit(self, count: int) -> np.ndarray:
        out = self.step.frames(self.buffer, self.next_frame, count, self.buffer_start)
        self.next_frame += count
        keep_from = int(self.step.plan.starts(self.next_frame, 1)[0])
        if self.step.pre_emphasis:  # a fused pre-emphasis reads the sample before a frame
            keep_from -= 1
        drop = min(max(keep_from - self.buffer_start, 0), self.buffer.shape[1])
        self.buffer = self.buffer[:, drop:]
        self.buffer_start += drop
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.buffer = np.concatenate([self.buffer, x], axis=1)
        self.n_samples += x.shape[1]
        return self._emit(self._count_ready())

    def _count_ready(self) -> int:
        complete = self.step.plan.frames_within(self.n_samples)
        if self.step.fixed_frames is not None:  # spectrogramketos: a fixed frame count
            complete = min(complete, self.step.fixed_frames)
        return max(complete - self.next_frame, 0)

    def flush(self) -> np.ndarray:
        """The remaining frames of the segment rule, zero padded past the end."""
        total = self.step.frame_count(self.n_samples)
        return self._emit(max(total - self.next_frame, 0))


class ChainStream:
    """The stream stage of a chain for one multichannel stream.

    ``process(block)`` takes ``(samples, channels)`` at the input rate and returns what
    is complete: ``(channels, samples)`` waveforms, or ``(channels, frames, bins)``
    spectra when the stream stage reaches the spectrogram. ``flush()`` ends the stream.
    """

    def __init__(self, chain: TransformChain, input_rate: int, channels: int) -> None:
        self.chain, self.channels = chain, channels
        self.resampler = chain.resampler(input_rate, channels)
        self._wave: list[_PreEmphasis | _SosFilter] = []
        self._framer: _Framer | None = None
        self._spec_steps: list[Step] = []
        steps = list(chain.steps)
        while steps and steps[0].streams:
            step = steps.pop(0)
            if isinstance(step, SpectrumStep):
                self._framer = _Framer(step, channels)
            elif self._framer is not None:
                self._spec_steps.append(step)
            else:
                self._wave.append(self._wave_processor(step))
        self.segment_steps: list[Step] = steps
        self.freqs: np.ndarray | None = self._framer.step.freqs if self._framer else None
        for step in self._spec_steps:
            self.freqs = step.run(self._probe(self.freqs)).freqs

    @property
    def segment_specs(self) -> list[TransformSpec]:
        """The transforms left for :meth:`finish_segment` (they need whole segments)."""
        return [s for step in self.segment_steps for s in step.specs]

    def _probe(self, freqs: np.ndarray | None) -> Features:
        if freqs is None:
            raise TransformError("a spectrum transform needs a spectrogram before it")
        return Features(np.zeros((1, 1, freqs.size), np.float32), float(self.chain.sample_rate),
                        freqs)

    def _wave_processor(self, step: Step) -> _PreEmphasis | _SosFilter:
        spec = step.specs[0]
        params = step.params
        if spec.name == "pre_emph":
            return _PreEmphasis(params["pre_empf_factor"], self.channels)
        if spec.name == "filter_wav":
            return _SosFilter(filter_sos(self.chain.sample_rate, **params), self.channels)
        raise TransformError(f"transform '{spec.name}' cannot run on a stream")

    def _after_resampler(self, y: np.ndarray, final: bool) -> np.ndarray:
        x = y.T  # (channels, samples); the framer reads float32 as is (exact)
        if self._wave:
            x = np.asarray(x, dtype=np.float64)
        for proc in self._wave:
            x = proc(x)
        framer = self._framer
        if framer is None:
            return x.astype(np.float32)
        frames = framer(x)
        if final:
            frames = np.concatenate([frames, framer.flush()], axis=1)
        return self._spec_stage(frames, framer.step.freqs)

    def _spec_stage(self, frames: np.ndarray, freqs: np.ndarray) -> np.ndarray:
        f = Features(frames, float(self.chain.sample_rate), freqs)
        for step in self._spec_steps:
            f = step.run(f)
        return np.ascontiguousarray(f.data, dtype=np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        return self._after_resampler(self.resampler.process(block), final=False)

    def flush(self) -> np.ndarray:
        return self._after_resampler(self.resampler.flush(), final=True)

    def finish_segment(self, data: np.ndarray) -> np.ndarray:
        """Apply the segment-stage transforms to ``(n, ...)`` cut from the stream output."""
        return self.chain.run_steps(self.segment_steps, data, self.freqs)
