"""Stream -> windows -> event model -> calls, de-duplicated (``pamlive analyze``).

The same pieces serve the live monitor: :func:`window_calls` runs the model on any list
of windows (all channels, batched by width) and decodes them; a
:class:`~pamlive.events.dedup.CallDeduplicator` turns them into one report per call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pamlive.events.call import Call
from pamlive.events.decode import decode_calls
from pamlive.events.dedup import CallDeduplicator
from pamlive.events.windows import make_event_windower
from pamlive.inference.events import EventModel
from pamlive.pipeline import Window


def window_calls(model: EventModel, windows: Sequence[Window], input_rate: int, *,
                 threshold: float | None = None) -> list[list[Call]]:
    """Each window's calls on all its channels, in stream seconds (window start from the
    sample clock); windows of equal width run in one batch. Calls above the input's
    Nyquist frequency are dropped, as batdetect2 drops them."""
    package = model.package
    spec = package.events
    assert spec is not None  # EventModel refuses other packages
    found: list[list[Call]] = [[] for _ in windows]
    widths: dict[tuple[int, ...], list[int]] = {}
    for i, w in enumerate(windows):
        widths.setdefault(w.features.shape, []).append(i)
    for shape, members in widths.items():
        feats = np.stack([windows[i].features for i in members]).reshape(-1, *shape[1:])
        outputs = model.run(feats)
        channels = shape[0]
        for k, i in enumerate(members):
            start_s = windows[i].start_sample / input_rate
            for ch in range(channels):
                found[i] += decode_calls(outputs[k * channels + ch], spec, start_s, ch,
                                         package.class_names, threshold=threshold,
                                         max_high_hz=input_rate / 2)
    return found


class EventDetector:
    """Windower -> EventModel -> decode -> de-duplication, synchronously; ``push`` and
    ``finish`` return the calls that are final (each once)."""

    def __init__(self, model: EventModel, input_rate: int, channels: int, *, hop_s: float,
                 threshold: float | None = None) -> None:
        self.model = model
        self.input_rate = input_rate
        self.threshold = threshold
        self.windower = make_event_windower(model.package, input_rate, channels, hop_s)
        self.dedup = CallDeduplicator(self.windower.hop_s)

    def push(self, block: np.ndarray) -> list[Call]:
        return self._calls(self.windower.push(block))

    def finish(self) -> list[Call]:
        return self._calls(self.windower.flush()) + self.dedup.flush()

    def _calls(self, windows: list[Window]) -> list[Call]:
        final: list[Call] = []
        found = window_calls(self.model, windows, self.input_rate, threshold=self.threshold)
        for w, calls in zip(windows, found, strict=True):
            final += self.dedup.push(calls, w.start_sample / self.input_rate,
                                     w.end_sample / self.input_rate)
        return final
