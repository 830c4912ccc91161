"""The one window cutter's options: the per-segment samples say when the next window is
due (the live windowing thread waits on that instead of polling), and the options that
cannot go together are refused."""

import numpy as np
import pytest

from pamlive.dsp.chain import TransformChain, TransformSpec
from pamlive.errors import ConfigError
from pamlive.live.windowing import GapTolerantWindows
from pamlive.windows import SegmentWindower, Windower

SCIPY_CHAIN = TransformChain([TransformSpec("load_audio_scipy", {"sr": 1000})])


@pytest.mark.parametrize("lead_s", [0.0, 0.25])
def test_per_segment_windows_are_cut_exactly_when_frames_needed_are_in(lead_s: float) -> None:
    """2 kHz into a 1 kHz ``load_audio_scipy`` chain: one sample fewer than
    ``frames_needed`` cuts no window, exactly that many cuts the next one."""
    x = np.random.default_rng(3).standard_normal((20000, 1)).astype(np.float32)
    windows = GapTolerantWindows(lambda: SegmentWindower(SCIPY_CHAIN, 2000, 1, 2.0, 0.7,
                                                         lead_s))
    fed = 0
    for _ in range(5):
        needed = windows.frames_needed()
        assert needed > fed
        assert windows.push(fed, x[fed:needed - 1]) == []
        got = windows.push(needed - 1, x[needed - 1:needed])
        assert len(got) == 1 and got[0].end_sample == needed
        fed = needed


def test_a_partial_tail_is_for_stream_windows_only() -> None:
    with pytest.raises(ConfigError, match="partial tail"):
        Windower(SCIPY_CHAIN, 2000, 1, 2.0, 1.0, per_segment=True, tail=True)
