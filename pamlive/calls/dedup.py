"""One report per call when overlapping windows both find it.

With windows overlapping (hop < segment), a call in the shared part is decoded from each
window that holds it. Two calls are one when they come from different, overlapping
windows, on the same channel, and their time-frequency boxes overlap: batdetect2's
suppression keeps peaks at least half its kernel apart within a window, so one window
never reports one call twice, while the same call seen from two windows gives two boxes
on top of each other. Of the two, the one further from its own window's edges is kept:
there the network saw the call's whole context and the per-window normalisation (PCEN,
mean subtraction) was least affected by the edge. Pairs are matched one to one, the most
overlapping first.

A call is released once no later window can find it again: the next window starts at
least ``hop_s`` after the last one, and its calls start after its start, so a call that
ends before then, or whose window ends before then, is final. Without overlap
(``hop_s >= segment_s``) nothing is ever merged, as in batdetect2's own chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

from pamlive.calls.call import Call


@dataclass
class _Held:
    call: Call
    window: int
    window_start_s: float
    window_end_s: float

    @property
    def margin(self) -> float:
        """Seconds between the call and its window's nearer edge."""
        return min(self.call.start_s - self.window_start_s, self.window_end_s - self.call.end_s)


def overlap(a: Call, b: Call) -> float:
    """Intersection over union of two calls' time-frequency boxes (0 if apart)."""
    dt = min(a.end_s, b.end_s) - max(a.start_s, b.start_s)
    df = min(a.high_hz, b.high_hz) - max(a.low_hz, b.low_hz)
    if dt <= 0 or df <= 0:
        return 0.0
    inter = dt * df
    area = (a.end_s - a.start_s) * (a.high_hz - a.low_hz) + \
        (b.end_s - b.start_s) * (b.high_hz - b.low_hz)
    return inter / (area - inter)


class CallDeduplicator:
    """Feed each window's calls in window order; get back the calls that are final."""

    def __init__(self, hop_s: float) -> None:
        self.hop_s = hop_s
        self._held: list[_Held] = []
        self._windows = 0
        self.merged = 0  # duplicates dropped

    def push(self, calls: list[Call], window_start_s: float,
             window_end_s: float) -> list[Call]:
        """The calls of one window (all channels); returns the calls now final."""
        window = self._windows
        self._windows += 1
        new = [_Held(c, window, window_start_s, window_end_s) for c in calls]
        pairs = sorted(
            ((overlap(n.call, h.call), i, j) for i, n in enumerate(new)
             for j, h in enumerate(self._held)
             if h.window_end_s > window_start_s and n.call.channel == h.call.channel),
            key=lambda p: -p[0])
        used_new: set[int] = set()
        used_held: set[int] = set()
        for iou, i, j in pairs:
            if iou <= 0 or i in used_new or j in used_held:
                continue
            used_new.add(i)
            used_held.add(j)
            self.merged += 1
            if new[i].margin > self._held[j].margin:
                self._held[j] = new[i]
        self._held += [n for i, n in enumerate(new) if i not in used_new]
        return self._release(window_start_s + self.hop_s)

    def flush(self) -> list[Call]:
        """End of stream: every held call."""
        return self._release(float("inf"))

    def _release(self, next_start_s: float) -> list[Call]:
        final = [h for h in self._held
                 if min(h.call.end_s, h.window_end_s) <= next_start_s]
        self._held = [h for h in self._held
                      if min(h.call.end_s, h.window_end_s) > next_start_s]
        return sorted((h.call for h in final), key=lambda c: (c.start_s, c.channel))
