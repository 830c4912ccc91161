"""Channel agreement: a detection heard by one hydrophone only is flow noise, cable strum
or a knock on that hydrophone, not a whale heard by the array.

Two optional per-class rules: ``k of n`` (at least ``k`` channels scored the class
positive in one of the merged windows: instant, applied before the alert), and
``tdoa_consistent`` (the arrivals on all pairs fit one plane wave: needs the bearing,
so it is judged with it, see :mod:`pamlive.array.bearing`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pamlive.detection import Detection, Onset


class ChannelAgreement:
    """The k-of-n rule per class; classes without a rule always count."""

    def __init__(self, min_channels: Mapping[str, int]) -> None:
        self.min_channels = dict(min_channels)
        self.rejected: dict[str, int] = {}

    def accepts(self, event: Detection | Onset) -> bool:
        """True if ``event`` counts; a refused detection is tallied per class (its onset,
        refused when it opened on too few channels, is the same call: not tallied)."""
        k = self.min_channels.get(event.class_name)
        if k is None or len(event.channels) >= k:
            return True
        if isinstance(event, Detection):
            self.rejected[event.class_name] = self.rejected.get(event.class_name, 0) + 1
        return False
