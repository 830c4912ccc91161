"""The batch that flows through a transform chain, and the checks every transform uses.

A transform takes a :class:`Features` batch and returns a new one; the checks turn a bad
parameter into a one-line :class:`~pamlive.errors.TransformError` that names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pamlive.errors import TransformError


@dataclass(frozen=True)
class Features:
    """A batch of segments (or of stream frames) on their way through the chain.

    ``data`` is ``(n, samples)`` for waveforms or ``(n, frames, bins)`` for spectra
    (PAMGuard's layout: one row per time frame). ``freqs`` holds the bin centre
    frequencies of a spectrum, ``None`` for a waveform.
    """

    data: np.ndarray
    sample_rate: float
    freqs: np.ndarray | None = None

    @property
    def is_spectrum(self) -> bool:
        return self.freqs is not None


def require_spectrum(f: Features, name: str) -> np.ndarray:
    """The bin frequencies of a spectrogram; a TransformError for a waveform."""
    if f.freqs is None:
        raise TransformError(f"{name} needs a spectrogram before it in the chain")
    return f.freqs


def require_wave(f: Features, name: str) -> None:
    if f.is_spectrum:
        raise TransformError(f"{name} works on the waveform; it cannot follow a spectrogram")


def _whole(value: Any) -> bool:
    """A finite number with no fraction (not a bool)."""
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value) and value == int(value))


def positive_int(name: str, param: str, value: Any) -> int:
    if not _whole(value):
        raise TransformError(f"{name}: {param} must be a whole number, got {value!r}")
    if int(value) <= 0:
        raise TransformError(f"{name}: {param} must be positive, got {value!r}")
    return int(value)


def number(name: str, param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TransformError(f"{name}: {param} must be a finite number, got {value!r}")
    return float(value)


def flag(name: str, param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TransformError(f"{name}: {param} must be true or false, got {value!r}")
    return value


def with_spectrum(f: Features, data: np.ndarray) -> Features:
    return replace(f, data=np.asarray(data, dtype=np.float32))
