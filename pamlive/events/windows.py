"""Windows for event models: every ``hop_s`` a window of ``segment_s``, and at the end of
the stream the tail as one shorter window on the hop grid.

A score model's last window is a full one aligned to the end of the stream. batdetect2
instead cuts a file into chunks from its start and runs its network on the last, shorter
chunk as it is (an 8 s file is 3 + 3 + 2 s; its front end pads each chunk to a width the
network takes): so does :class:`EventWindower`, which with ``hop_s == segment_s`` sees
batdetect2's chunks exactly.
"""

from __future__ import annotations

import numpy as np

from pamlive.inference.package import ModelPackage
from pamlive.pipeline import Window, Windower


class EventWindower(Windower):
    """:class:`~pamlive.pipeline.Windower` whose :meth:`flush` ends with the partial tail
    window (its features from the chain on the shorter segment: another width)."""

    @property
    def hop_s(self) -> float:
        """The hop in seconds actually used (moved onto the spectrogram's frames, if so)."""
        return self.hop / self.chain.sample_rate

    def flush(self) -> list[Window]:
        self._append(self.resampler.flush())
        windows = self._cut(final=False)
        start = self._next * self.hop
        if self._covered >= self._end or start >= self._end:
            return windows
        self._buf = np.concatenate([self._buf, *self._pending])
        self._pending = []
        tail = self._buf[start - self._buf_start : self._end - self._buf_start]
        features = self.chain.apply(np.ascontiguousarray(tail.T))
        self._covered = self._end
        self._next += 1
        return [*windows, Window(self._next - 1, self.resampler.input_index(start),
                                 self._n_in, self._n_in, features)]


def make_event_windower(package: ModelPackage, input_rate: int, channels: int,
                        hop_s: float) -> EventWindower:
    """The windows an event model runs on (its package's ``segment_s``, every ``hop_s``)."""
    return EventWindower(package.chain(), input_rate, channels, package.segment_s, hop_s)
