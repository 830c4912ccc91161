"""PAMGuard's ``load_audio_scipy`` as Ketos does it: each segment resampled on its own.

Ketos (``Waveform.from_wav``) reads every segment from the file at the recording's rate
(samples ``ceil(t * rate_in)`` to ``ceil((t + d) * rate_in)``) and resamples it with
librosa's ``res_type="scipy"``, i.e. ``scipy.signal.resample`` (an FFT resampler, the
segment taken as periodic) to ``ceil(n * rate_out / rate_in)`` samples. A Ketos model
saw its training spectrograms made that way, and pamlive's stream resampler (a
polyphase low-pass over the whole stream) gives measurably different scores near the
band edge (docs/import-models.md). :func:`resample_segment` is the per-segment path a
``load_audio_scipy`` chain needs; the window cutter then cuts segments at the input
rate (:class:`pamlive.windows.segments.SegmentCuts`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pamlive.dsp.chain import TransformChain


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


def needs_segment_resampling(chain: TransformChain, input_rate: int) -> bool:
    """Whether a stream at ``input_rate`` must be cut segment by segment: the
    chain loads with ``load_audio_scipy`` (per-segment FFT resampling, as PAMGuard and
    Ketos do) and the input is not already at the chain's rate."""
    return (bool(chain.specs) and chain.specs[0].name == "load_audio_scipy"
            and int(input_rate) != chain.sample_rate)
