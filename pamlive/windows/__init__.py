"""Model windows: :class:`Window`, the hop rule, and the one cutter with its presets
(per stream, per segment, event models); see :mod:`pamlive.windows.windower`."""

from pamlive.windows.window import Window, window_hop
from pamlive.windows.windower import (
    EventWindower,
    SegmentWindower,
    Windower,
    input_hop_frames,
    make_event_windower,
    make_windower,
)

__all__ = ["EventWindower", "SegmentWindower", "Window", "Windower", "input_hop_frames",
           "make_event_windower", "make_windower", "window_hop"]
