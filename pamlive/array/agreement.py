"""Channel agreement: a detection heard by one hydrophone only is flow noise, cable strum
or a knock on that hydrophone, not a whale heard by the array.

Two optional per-class rules: ``k of n`` (at least ``k`` channels scored the class
positive in one of the merged windows: instant, applied before the alert), and
``tdoa_consistent`` (the arrivals on all pairs fit one plane wave: needs the bearing,
so it is judged with it, see :mod:`pamlive.array.bearing`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pamlive.detection import Detection


class ChannelAgreement:
    """The k-of-n rule per class; classes without a rule always count."""

    def __init__(self, min_channels: Mapping[str, int]) -> None:
        self.min_channels = dict(min_channels)
        self.rejected: dict[str, int] = {}

    def accepts(self, det: Detection) -> bool:
        """True if ``det`` counts; a refusal is tallied per class."""
        k = self.min_channels.get(det.class_name)
        if k is None or len(det.channels) >= k:
            return True
        self.rejected[det.class_name] = self.rejected.get(det.class_name, 0) + 1
        return False
