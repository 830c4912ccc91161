"""The activity gate: batdetect2's network runs only on channel-windows whose features
show a bright, compact blob; a quiet channel-window skips it and yields no calls.

Why this statistic. The network input (batdetect2's front end: PCEN, each row's mean
removed, clipped at 0) is bounded: PCEN's smoother has a 10 ms time constant and its
current frame is part of it, so no pixel, call or noise, gets much above ~3.5, whatever
the gain (the level moves by ~3 % per factor 10 of gain). What differs is the shape: a
call is a compact bright blob several pixels wide, stationary noise single-pixel speckle.
So a channel-window's **activity** is the largest mean of a 3 x 3 box of its features.
The first columns are PCEN's start-up (its smoother starts far below the signal, so every
row is bright for ~20 ms); there each column's median over the rows is subtracted first:
that removes what lights the whole column and keeps a call's few rows.

What it is safe for (docs/bats.md, "Activity gate"): on the reference recordings, every
channel-window holding a call above a detection threshold of 0.5 has activity >= 1.91,
the quiet background (call-free stretches of the recordings, white and pink noise) at
most 1.31. Below 0.5 the network reports calls as faint as the background (at 0.3 down
to 0.87), so no level is safe there and :func:`open_gate` refuses the combination.
Clicks and rain open the gate (>= 2.06): conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pamlive.errors import ConfigError

BOX = 3  # pixels (rows and columns) of the blob a call makes at the least
WARMUP_COLUMNS = 128  # PCEN's start-up: 6 time constants of 20 frames
MIN_DETECTION_THRESHOLD = 0.5  # below it calls can be as faint as the background


def activity(features: np.ndarray) -> np.ndarray:
    """Per channel of ``features`` ``(n, rows, W)``: the largest mean of a ``BOX`` x
    ``BOX`` box (zeros beyond the edges), the first ``WARMUP_COLUMNS`` columns less their
    median over the rows (clipped at 0) -> ``(n,)``."""
    f = np.asarray(features, np.float32)
    if f.shape[0] == 0 or f.shape[-1] == 0:
        return np.zeros(f.shape[0], np.float32)
    warm = min(WARMUP_COLUMNS, f.shape[-1])
    f = f.copy()
    head = f[..., :warm]
    np.clip(head - np.median(head, axis=1, keepdims=True), 0, None, out=head)
    from scipy.ndimage import uniform_filter  # lazily: scipy is ~28 MB of RSS

    boxes = uniform_filter(f, size=(1, BOX, BOX), mode="constant")
    return np.asarray(boxes.reshape(f.shape[0], -1).max(axis=1))


@dataclass
class ActivityGate:
    """Which channels of a window the network runs on, and how many channel-windows it ran
    on and skipped. ``level`` None: the gate is off (every channel runs, counted)."""

    level: float | None = None
    run: int = 0
    skipped: int = 0

    def select(self, features: np.ndarray) -> np.ndarray:
        """Indices of the channels of ``features`` ``(n, rows, W)`` to run the network on."""
        n = features.shape[0]
        chosen = (np.arange(n) if self.level is None
                  else np.flatnonzero(activity(features) >= self.level))
        self.run += chosen.size
        self.skipped += n - chosen.size
        return chosen

    def counts(self) -> dict[str, int]:
        return {"run": self.run, "skipped": self.skipped}

    def share(self) -> str:
        """``network: 12 % of 340 channel-windows (activity gate 0.95)`` for a summary."""
        total = self.run + self.skipped
        share = f"{100 * self.run / total:.0f} % of " if total else ""
        gate = "off" if self.level is None else f"{self.level:g}"
        return f"network: {share}{total} channel-windows (activity gate {gate})"


def open_gate(level: float | bool, threshold: float) -> ActivityGate:
    """The gate for ``[model] activity_gate`` (a level; False or 0: off) at the detection
    threshold in force; a level with a threshold below ``MIN_DETECTION_THRESHOLD`` is
    refused in one line (the gate could skip a call there)."""
    if level is False or level == 0:
        return ActivityGate()
    if threshold < MIN_DETECTION_THRESHOLD:
        raise ConfigError(
            f"[model] activity_gate = {float(level):g} is safe for detection thresholds >= "
            f"{MIN_DETECTION_THRESHOLD:g} only (below, calls can be as faint as the "
            f"background), got {threshold:g}: raise the threshold or set activity_gate = false")
    return ActivityGate(float(level))

