"""A model window and the hop rule: the two things every way of cutting windows shares."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.stream import frame_aligned_hop
from pamlive.errors import ConfigError


@dataclass
class Window:
    index: int  # window number in the stream
    start_sample: int  # input-stream index, inclusive
    end_sample: int  # input-stream index, exclusive
    ready_sample: int  # input samples received when the window became complete
    features: np.ndarray  # (channels, *feature_shape)


def window_hop(chain: TransformChain, hop_s: float, share_frames: bool = True) -> int:
    """The hop in samples at the chain's rate for ``hop_s``: whole samples, and, where the
    windows share spectrogram frames, moved onto them if that is within 1 % (see
    :func:`~pamlive.dsp.stream.frame_aligned_hop`). Windows resampled one by one keep the
    framework's grid (Ketos' ``k * hop_s``), so they are not moved."""
    if not math.isfinite(hop_s):
        raise ConfigError(f"hop {hop_s} s must be a finite number")
    hop = round(hop_s * chain.sample_rate)
    if hop < 1:
        raise ConfigError(f"hop {hop_s} s is shorter than one sample at {chain.sample_rate} Hz")
    return frame_aligned_hop(chain, hop) if share_frames else hop
