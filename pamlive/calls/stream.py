"""Stream -> windows -> event model -> calls, de-duplicated (``pamlive analyze``).

The same pieces serve the live monitor: :func:`window_calls` runs the model on any list
of windows (each window's channels that pass the activity gate in one batch) and decodes
them; a :class:`~pamlive.calls.dedup.CallDeduplicator` turns them into one report per call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pamlive.calls.call import Call
from pamlive.calls.decode import decode_calls
from pamlive.calls.dedup import CallDeduplicator
from pamlive.calls.gate import ActivityGate
from pamlive.inference.heatmaps import EventModel
from pamlive.windows import Window, make_event_windower


def window_calls(model: EventModel, windows: Sequence[Window], input_rate: int, *,
                 threshold: float | None = None,
                 gate: ActivityGate | None = None) -> list[list[Call]]:
    """Each window's calls on all its channels, in stream seconds (window start from the
    sample clock). One network batch per window (its channels that pass ``gate``; a
    channel it skips has no calls): a 3 s channel window holds ~27 MB of activations, so
    a block of many windows must not become one batch. Calls above the input's Nyquist
    frequency are dropped, as batdetect2 drops them."""
    package = model.package
    spec = package.events
    assert spec is not None  # EventModel refuses other packages
    gate = gate or ActivityGate()
    found: list[list[Call]] = []
    for w in windows:
        chosen = gate.select(w.features)
        features = w.features if chosen.size == len(w.features) else w.features[chosen]
        outputs = model.run(features)
        start_s = w.start_sample / input_rate
        found.append([call for ch, out in zip(chosen.tolist(), outputs, strict=True)
                      for call in decode_calls(out, spec, start_s, ch, package.class_names,
                                               threshold=threshold,
                                               max_high_hz=input_rate / 2)])
    return found


class EventDetector:
    """Windower -> EventModel -> decode -> de-duplication, synchronously; ``push`` and
    ``finish`` return the calls that are final (each once); ``gate`` counts the
    channel-windows the network ran on and skipped."""

    def __init__(self, model: EventModel, input_rate: int, channels: int, *, hop_s: float,
                 threshold: float | None = None, gate: ActivityGate | None = None) -> None:
        self.model = model
        self.input_rate = input_rate
        self.threshold = threshold
        self.gate = gate or ActivityGate()
        self.windower = make_event_windower(model.package, input_rate, channels, hop_s)
        self.dedup = CallDeduplicator(self.windower.hop_s)

    def push(self, block: np.ndarray) -> list[Call]:
        return self._calls(self.windower.push(block))

    def finish(self) -> list[Call]:
        return self._calls(self.windower.flush()) + self.dedup.flush()

    def _calls(self, windows: list[Window]) -> list[Call]:
        final: list[Call] = []
        found = window_calls(self.model, windows, self.input_rate, threshold=self.threshold,
                             gate=self.gate)
        for w, calls in zip(windows, found, strict=True):
            final += self.dedup.push(calls, w.start_sample / self.input_rate,
                                     w.end_sample / self.input_rate)
        return final
