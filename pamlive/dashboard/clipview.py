"""The chosen detection's evidence clip as spectrogram rows, for the dashboard's strip.

Why: an operator judges a call by its shape. The monitor saves each detection's clip
(``clip`` in the detection, docs/field.md); where the dashboard can read that file (the
same machine, or a shared disk) the strip shows the clip instead of the live sea, as
band levels in dB like the ``spectrum`` messages, so it is drawn the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pamlive.dsp.windows import psd_frames

BANDS = 64  # as the live spectrum feed
MAX_CLIP_S = 120.0  # longer files are not drawn (a terminal shows a few hundred columns)


@dataclass(frozen=True)
class ClipRows:
    """Rows of band levels (dB), oldest first, each ``BANDS`` bands from 0 to ``fmax_hz``."""

    path: str
    rows: list[list[float]]
    fmax_hz: float
    row_s: float


def load_clip(path: str, channel: int, fmax_hz: float) -> ClipRows | str:
    """The clip's spectrogram rows, or why it cannot be shown (one short line)."""
    try:
        info = sf.info(path)
        if info.duration > MAX_CLIP_S:
            return f"clip longer than {MAX_CLIP_S:.0f} s"
        audio, rate = sf.read(path, dtype="float64", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        return f"clip not readable here ({type(e).__name__})"
    x = audio[:, min(channel, audio.shape[1] - 1)]
    fmax = min(fmax_hz, rate / 2.0)
    nperseg = int(2 ** np.ceil(np.log2(rate / (fmax / BANDS))))
    if len(x) < nperseg:
        return "clip too short to draw"
    freqs, power = psd_frames(x, rate, nperseg)
    edges = np.linspace(0.0, fmax, BANDS + 1)
    band = np.clip(np.searchsorted(edges, freqs[freqs < fmax], side="right") - 1, 0, BANDS - 1)
    levels = np.full((BANDS, power.shape[1]), 1e-20)
    np.maximum.at(levels, band, power[freqs < fmax])
    db = 10.0 * np.log10(levels + 1e-20)
    step = nperseg - nperseg * 3 // 4
    return ClipRows(str(Path(path)), [list(map(float, col)) for col in db.T], fmax, step / rate)
