"""PAMGuard's spectrograms: framing, window, FFT and magnitude (and interpolation).

Framing + windowing and magnitude + interpolation are Numba kernels; the FFT between them
is ``numpy.fft.rfft`` (the same pocketfft as ``scipy.fft``, without the ~28 MB of RSS
that importing scipy costs the live monitor) on cache-sized batches of frames, so there
is no Python loop per frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pamlive.dsp import kernels
from pamlive.dsp.features import Features, flag, number, positive_int, require_wave
from pamlive.dsp.spectra import ValueMap
from pamlive.dsp.windows import hamming, hann
from pamlive.errors import TransformError

# frame values per FFT batch: 1 MB of float64 frames keeps the batch in cache
_CHUNK_VALUES = 1 << 17


def spectrogram_frames(n_samples: int, hop: int) -> int:
    """Frames per segment: one starting every ``hop`` samples, ``ceil(n / hop)`` in all.

    The last frames run past the segment and are zero-padded, so a 2 s segment at
    2 kHz with hop 100 gives the 40 frames PAMGuard's right whale model expects.
    """
    return max(1, -(-n_samples // hop))


def ketos_window_size(window_size: Any) -> float:
    size = number("spectrogramketos", "window_size", window_size)
    if size <= 0:
        raise TransformError(f"spectrogramketos: window_size must be positive, got {size:g} s")
    return size


def ketos_frames(window_size: float, fft: int, hop: int, sample_rate: float) -> int:
    """jpamutils ``numSamplesKetos(window_size - fft/sr, sr/hop)``: the Ketos frame count."""
    f = (window_size - fft / sample_rate) * (sample_rate / hop)
    n = int(f)
    if f - n > np.finfo(float).eps:
        n = math.ceil(f)
    return max(1, n)


@dataclass(frozen=True)
class StftPlan:
    """Everything a framed magnitude spectrum needs, worked out once per chain."""

    fft: int
    hop: int
    window: np.ndarray  # float64, length fft
    n_bins: int  # magnitude bins kept (from DC)
    late_frames: bool  # jpamutils' framing: frames k >= 1 start one sample late
    sample_rate: float

    @property
    def freqs(self) -> np.ndarray:
        return np.arange(self.n_bins) * (self.sample_rate / self.fft)

    def frames_within(self, n_samples: int) -> int:
        """How many frames (from frame 0) lie wholly inside the first ``n_samples``."""
        if n_samples < self.fft:
            return 0
        late = 1 if self.late_frames else 0
        return 1 + max(0, (n_samples - self.fft - late) // self.hop)

    def starts(self, first: int, count: int) -> np.ndarray:
        """Start samples of frames ``first .. first+count-1`` (relative to the segment)."""
        k = np.arange(first, first + count, dtype=np.int64)
        s = k * self.hop
        if self.late_frames:
            s += (k >= 1).astype(np.int64)
        return s


def stft_plan(name: str, params: Mapping[str, Any], sample_rate: float) -> StftPlan:
    """The framing of ``spectrogram`` / ``spectrogramketos`` for these parameters."""
    fft = positive_int(name, "fft", params["fft"])
    hop = positive_int(name, "hop", params["hop"])
    exact = flag(name, "pamguard_exact", params.get("pamguard_exact", False))
    if name == "spectrogramketos" or exact:
        # jpamutils: Hamming (jdsp's / WindowFunction's, symmetric), and the bins that
        # buildAbsoluteSpectram keeps: fft/2 + 1 if fft/2 is odd, else fft/2; Ketos
        # itself always keeps fft/2 + 1 (``all_bins``, a pamlive extension)
        half = fft // 2
        n_bins = half + 1 if half % 2 == 1 else half
        if name == "spectrogramketos" and flag(name, "all_bins", params.get("all_bins", False)):
            n_bins = half + 1
        window = hamming(fft, periodic=False)
        return StftPlan(fft, hop, window, n_bins, exact, sample_rate)
    return StftPlan(fft, hop, hann(fft), fft // 2 + 1, False, sample_rate)


def magnitude_frames(
    x: np.ndarray,
    plan: StftPlan,
    starts: np.ndarray,
    lo: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    pre_emphasis: float = 0.0,
    finish: ValueMap | None = None,
) -> np.ndarray:
    """``|rfft(window * frame)|`` at each of ``starts`` in each row of ``x``: (n, F, bins).

    With ``lo``/``weight`` (from :func:`interp_plan`) the magnitudes are interpolated in
    the same pass, which is how ``spectrogram`` + ``freq_compression`` run in a chain;
    ``pre_emphasis`` folds a ``pre_emph`` before the spectrogram into the framing and
    ``finish`` the per-value transforms after it into the same chunk loop, so every
    chunk goes from samples to finished values while it is in cache.
    """
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    x = np.ascontiguousarray(x)
    n_rows = x.shape[0] * starts.shape[0]
    if lo is None:
        lo, weight = np.arange(plan.n_bins, dtype=np.int64), np.zeros(plan.n_bins)
    hi = np.where(weight != 0.0, lo + 1, lo)
    out = np.empty((n_rows, lo.size), dtype=np.float32)
    chunk = max(1, _CHUNK_VALUES // plan.fft)
    frames = np.empty((min(chunk, n_rows), plan.fft), dtype=np.float64)
    for r0 in range(0, n_rows, chunk):  # per chunk of frames, not per frame
        rows = frames[: min(chunk, n_rows - r0)]
        kernels.frame_windowed(x, starts, plan.window, float(pre_emphasis), r0, rows)
        spec = np.fft.rfft(rows, axis=-1).view(np.float64)  # (rows, 2 * bins): re, im
        block = out[r0 : r0 + rows.shape[0]]
        kernels.magnitude_interp(spec, lo, hi, weight, block)
        if finish is not None:
            finish.apply(block)
    return out.reshape(x.shape[0], starts.shape[0], lo.size)


def spectrogram(f: Features, fft: int, hop: int, pamguard_exact: bool = False) -> Features:
    """Magnitude STFT; frames start every ``hop`` samples, ``ceil(n/hop)`` of them.

    Default: periodic Hann, ``fft/2 + 1`` bins. ``pamguard_exact``: jpamutils' Hamming
    framing (see ``docs/notes-dsp-parity.md``).
    """
    require_wave(f, "spectrogram")
    plan = stft_plan(
        "spectrogram", {"fft": fft, "hop": hop, "pamguard_exact": pamguard_exact}, f.sample_rate
    )
    starts = plan.starts(0, spectrogram_frames(f.data.shape[1], plan.hop))
    return Features(magnitude_frames(f.data, plan, starts), f.sample_rate, plan.freqs)


def spectrogramketos(
    f: Features, fft: int, hop: int, window_size: float, all_bins: bool = False
) -> Features:
    """jpamutils' Ketos spectrogram: Hamming, frames every ``hop``, Ketos frame count;
    ``all_bins``: Ketos' own ``fft/2 + 1`` bins (jpamutils drops the Nyquist bin when
    ``fft/2`` is even)."""
    require_wave(f, "spectrogramketos")
    params = {"fft": fft, "hop": hop, "all_bins": all_bins}
    plan = stft_plan("spectrogramketos", params, f.sample_rate)
    size = ketos_window_size(window_size)
    starts = plan.starts(0, ketos_frames(size, plan.fft, plan.hop, f.sample_rate))
    return Features(magnitude_frames(f.data, plan, starts), f.sample_rate, plan.freqs)
