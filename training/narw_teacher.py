"""Koogu's right whale model as a second opinion on the training recordings.

Why: the DCLDE 2013 truth is incomplete -- the three days and the background files hold
faint upcalls nobody marked (the contact sheets of v3's "false alarms" show several). A
negative window drawn from such a stretch teaches the detector that a faint upcall is
noise, and hard-negative mining would pick exactly those. Koogu's NARW model, trained on
other data, marks where it hears anything (a 2.25-s clip scoring >= 0.5); negatives and
mined hard negatives keep away from those places. It labels nothing positive.

Scores are cached per file (``.npz`` under ``~/.cache/pamlive-narw``, outside the
repository: they are derived from ``../shared``), computed on first use by
``narw_data.load_days``. Needs TensorFlow (the ``convert`` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

KOOGU = Path("models/koogu-narw/koogu_narw_model")
KOOGU_RATE, KOOGU_SAMPLES = 1000, 2250
HOP_S = 0.25
CACHE = Path.home() / ".cache/pamlive-narw"


def koogu_scores(model_dir: Path, audio_2k: np.ndarray, hop_s: float = HOP_S
                 ) -> tuple[np.ndarray, np.ndarray]:
    """NARW score of every 2.25-s Koogu clip at ``hop_s``: (clip centres s, scores).
    Clips are peak-normalised, as Koogu feeds them."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(model_dir)).signatures["with_transformation"]
    x = resample_poly(audio_2k.astype(np.float64), 1, 2).astype(np.float32)
    hop = int(hop_s * KOOGU_RATE)
    starts = np.arange(0, len(x) - KOOGU_SAMPLES + 1, hop)
    clips = np.stack([x[s : s + KOOGU_SAMPLES] for s in starts])
    clips /= np.maximum(np.abs(clips).max(axis=1, keepdims=True), 1e-9)
    out = [fn(inputs=tf.constant(clips[i : i + 512]))["scores"].numpy()[:, 0]
           for i in range(0, len(clips), 512)]
    return (starts + KOOGU_SAMPLES / 2) / KOOGU_RATE, np.concatenate(out)


def cached_koogu(shared: Path, wav: Path, cache: Path = CACHE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Koogu (clip centres, scores) for ``wav``, computed once."""
    path = cache / f"koogu_{wav.stem}.npz"
    if not path.exists():
        audio, rate = sf.read(str(wav), dtype="float32")
        if rate != 2000:
            raise ValueError(f"{wav}: expected 2000 Hz, got {rate}")
        t, s = koogu_scores(shared / KOOGU, audio)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, t=t, s=s)
    z = np.load(path)
    return z["t"], z["s"]
