"""Fusion rules: several models' scores for one class at one time -> one score.

Pure functions over ``scores`` of shape ``(members, ...)`` (e.g. ``(members, channels)``);
NaN marks a member that has no window at that time (not started yet, or after a gap):
it brings no evidence, so it counts as a score of 0 in ``mean`` and as a member below
its threshold in ``all`` and ``k_of_n``.

* ``mean``: the mean score; a detection when it reaches the rule's own threshold.
* ``k_of_n``: positive when at least ``k`` members reach their own thresholds. ``all`` is
  ``k_of_n`` with ``k = n``.

The vote rules compare each member with its own threshold (0.8 for one model may mean
what 0.98 means for another), so their fused score is on a common scale: each score is
mapped piecewise linearly so that its member's threshold lands on 0.5 (0 -> 0, threshold
-> 0.5, 1 -> 1), and the fused score is the ``k``-th largest mapped score. It reaches
:data:`VOTE_THRESHOLD` exactly when ``k`` members reach theirs, and it ranks detections
(a higher fused score means every voting member is further above its threshold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RULES = ("mean", "all", "k_of_n")
VOTE_THRESHOLD = 0.5


def at_threshold_scale(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Map member ``m``'s scores so that ``thresholds[m]`` becomes 0.5; NaN stays NaN."""
    # compared in float32 (the classifiers' scores), like WindowMerger, so that one model
    # alone decides exactly as it does outside an ensemble
    s32 = np.asarray(scores, np.float32)
    t32 = np.asarray(thresholds, np.float32).reshape((-1,) + (1,) * (s32.ndim - 1))
    reached = s32 >= t32
    s, t = s32.astype(np.float64), t32.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.where(t > 0, 0.5 * s / t, 0.5)
        above = np.where(t < 1, 0.5 + 0.5 * (s - t) / (1 - t), 1.0)
    return np.where(reached, above, below)


def fuse_mean(scores: np.ndarray) -> np.ndarray:
    """Mean over members; a missing member (NaN) counts as 0."""
    return np.nan_to_num(np.asarray(scores, np.float64), nan=0.0).mean(axis=0)


def fuse_k_of_n(scores: np.ndarray, thresholds: Sequence[float], k: int) -> np.ndarray:
    """The ``k``-th largest at-threshold score: >= 0.5 iff >= ``k`` members reach theirs."""
    n = np.asarray(scores).shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k_of_n needs 1 <= k <= {n} members, got k = {k}")
    u = np.nan_to_num(at_threshold_scale(scores, thresholds), nan=0.0)
    return -np.sort(-u, axis=0)[k - 1]


def fuse_all(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Every member at or over its own threshold: the smallest at-threshold score."""
    return fuse_k_of_n(scores, thresholds, np.asarray(scores).shape[0])


def fuse(rule: str, scores: np.ndarray, thresholds: Sequence[float], k: int | None = None
         ) -> np.ndarray:
    """Apply ``rule`` (one of :data:`RULES`) over axis 0 of ``scores``."""
    if rule == "mean":
        return fuse_mean(scores)
    if rule == "all":
        return fuse_all(scores, thresholds)
    if rule == "k_of_n":
        if k is None:
            raise ValueError("k_of_n needs k")
        return fuse_k_of_n(scores, thresholds, k)
    raise ValueError(f"unknown fusion rule {rule!r} (known: {', '.join(RULES)})")
