"""One call found by an event-detection model, on the sample clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """A call's time-frequency box, species and probabilities.

    Times are stream seconds (input sample index / input rate, from the stream start);
    ``probs`` maps every class name to its probability at the call (background excluded),
    so ``species`` is the class with the highest ``probs`` value and ``class_prob`` is it.
    """

    start_s: float
    end_s: float
    low_hz: float
    high_hz: float
    species: str
    class_prob: float
    det_prob: float
    channel: int
    probs: dict[str, float]
