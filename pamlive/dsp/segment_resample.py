"""PAMGuard's ``load_audio_scipy`` as Ketos does it: each segment resampled on its own.

Ketos (``Waveform.from_wav``) reads every segment from the file at the recording's rate
(samples ``ceil(t * rate_in)`` to ``ceil((t + d) * rate_in)``) and resamples it with
librosa's ``res_type="scipy"``, i.e. ``scipy.signal.resample`` (an FFT resampler, the
segment taken as periodic) to ``ceil(n * rate_out / rate_in)`` samples. A Ketos model
saw its training spectrograms made that way, and pamlive's stream resampler (a
polyphase low-pass over the whole stream) gives measurably different scores near the
band edge (docs/import-models.md). :func:`resample_segment` is the per-segment path a
``load_audio_scipy`` chain needs; the window cutter must then cut segments at the input
rate (the hook is described in docs/import-models.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pamlive.errors import ConfigError

if TYPE_CHECKING:
    from pamlive.dsp.chain import TransformChain
    from pamlive.pipeline import Window


def input_span(start: int, length: int, rate_out: int, rate_in: int) -> tuple[int, int]:
    """Input samples ``[first, stop)`` Ketos reads for the output-rate segment that starts
    at output sample ``start`` and lasts ``length`` output samples."""
    first = math.ceil(start * rate_in / rate_out - 1e-9)
    stop = math.ceil((start + length) * rate_in / rate_out - 1e-9)
    return first, stop


def resample_segment(x: np.ndarray, rate_in: int, rate_out: int, length: int) -> np.ndarray:
    """Rows of ``x`` (segments at ``rate_in``) at ``rate_out``: ``scipy.signal.resample`` to
    ``ceil(n * rate_out / rate_in)`` samples, then cut (or zero-padded) to ``length``."""
    from scipy import signal  # lazily: ~47 MB of RSS (pamlive.dsp.windows)
    x = np.asarray(x, dtype=np.float64)
    if rate_in != rate_out:
        n = math.ceil(x.shape[-1] * rate_out / rate_in)
        x = signal.resample(x, n, axis=-1)
    if x.shape[-1] < length:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])
    return x[..., :length].astype(np.float32)


class SegmentWindower:
    """:class:`pamlive.pipeline.Windower` for a ``load_audio_scipy`` chain whose input is
    not at the model's rate: the same windows (every ``hop_s``, one aligned to the end),
    each cut at the input rate and resampled on its own, as Ketos does. Same interface
    (``push``/``flush`` -> ``Window`` list), so the pipeline can pick it by the chain.
    """

    def __init__(self, chain: TransformChain, input_rate: int, channels: int,
                 segment_s: float, hop_s: float, lead_s: float = 0.0) -> None:
        self.chain = chain
        self.channels = channels
        self.input_rate = int(input_rate)
        self.rate = chain.sample_rate
        self.segment = round(segment_s * self.rate)
        self.hop = round(hop_s * self.rate)
        if self.hop < 1:
            raise ConfigError(f"hop {hop_s} s is shorter than one sample at {self.rate} Hz")
        # lead_s (a package's segment_lead_s): window k's segment starts lead_s before
        # k * hop_s, so its nominal window starts at k * hop_s, on the framework's grid;
        # windows whose segment would start before the stream are left out
        self.lead = round(lead_s * self.rate)
        self._buf = np.zeros((0, channels), np.float32)
        self._buf_start = 0  # input index of _buf[0]
        self._next = -(-self.lead // self.hop)
        self._covered = 0  # input index up to which windows cover the stream
        self._n_in = 0

    def push(self, block: np.ndarray) -> list[Window]:
        block = np.asarray(block, np.float32).reshape(-1, self.channels)
        self._n_in += block.shape[0]
        if block.shape[0]:
            self._buf = np.concatenate([self._buf, block])
        return self._cut(final=False)

    def flush(self) -> list[Window]:
        return self._cut(final=True)

    def _span(self, k: int) -> tuple[int, int]:
        return input_span(k * self.hop - self.lead, self.segment, self.rate, self.input_rate)

    def _cut(self, final: bool) -> list[Window]:
        spans = []
        while self._span(self._next)[1] <= self._n_in:
            spans.append(self._span(self._next))
            self._next += 1
        covered = spans[-1][1] if spans else self._covered
        end = self._n_in * self.rate // self.input_rate  # whole output samples received
        if final and covered < self._n_in and end >= self.segment:
            first, stop = input_span(end - self.segment, self.segment, self.rate,
                                     self.input_rate)
            spans.append((first, min(stop, self._n_in)))
            self._next += 1
        if not spans:
            return []
        from pamlive.pipeline import Window  # the pipeline may pick this class: no cycle

        segments = [self._buf[a - self._buf_start:b - self._buf_start].T for a, b in spans]
        feats = [self.chain.apply(resample_segment(s, self.input_rate, self.rate,
                                                   self.segment)) for s in segments]
        first_index = self._next - len(spans)
        windows = [Window(first_index + i, a, b, self._n_in, f)
                   for i, ((a, b), f) in enumerate(zip(spans, feats, strict=True))]
        self._covered = spans[-1][1]
        # keep what the next window needs, and what one aligned to the end would
        last = input_span(max(end - self.segment, 0), self.segment, self.rate,
                          self.input_rate)[0]
        keep_from = min(self._span(self._next)[0], last)
        drop = min(max(keep_from - self._buf_start, 0), self._buf.shape[0])
        self._buf = self._buf[drop:]
        self._buf_start += drop
        return windows


def needs_segment_resampling(chain: TransformChain, input_rate: int) -> bool:
    """Whether a stream at ``input_rate`` must be cut by :class:`SegmentWindower`: the
    chain loads with ``load_audio_scipy`` (per-segment FFT resampling, as PAMGuard and
    Ketos do) and the input is not already at the chain's rate."""
    return (bool(chain.specs) and chain.specs[0].name == "load_audio_scipy"
            and int(input_rate) != chain.sample_rate)
