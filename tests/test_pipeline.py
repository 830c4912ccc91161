"""The windower gives the model the same windows whatever the block sizes, and the same
numbers as resampling the whole signal with scipy and cutting it by hand."""

import numpy as np
import pytest
from conftest import RIGHT_WHALE_CHAIN
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from pamlive.dsp.chain import TransformChain, TransformSpec
from pamlive.windows import Windower

CHAIN = TransformChain([TransformSpec(t["name"], t["params"]) for t in RIGHT_WHALE_CHAIN])
SIGNAL = np.random.default_rng(7).normal(0, 0.1, (8000 * 9 + 333, 2)).astype(np.float32)


def run(blocks: list[int]) -> list:
    w = Windower(CHAIN, 8000, 2, segment_s=2.0, hop_s=0.5)
    out, i = [], 0
    for b in blocks:
        out += w.push(SIGNAL[i:i + b])
        i += b
    out += w.push(SIGNAL[i:])
    return out + w.flush()


def test_windows_match_scipy_reference() -> None:
    windows = run([SIGNAL.shape[0]])
    ref = resample_poly(SIGNAL.astype(np.float64), 1, 4, axis=0)  # scipy's own filter design
    hop, seg = 1000, 4000
    regular = [w for w in windows if w.start_sample % 2000 == 0][: (ref.shape[0] - seg) // hop + 1]
    assert len(regular) == (ref.shape[0] - seg) // hop + 1
    for w in regular:
        k = w.start_sample // 4
        expect = CHAIN.apply(ref[k:k + seg].T.astype(np.float32))
        np.testing.assert_allclose(w.features, expect, atol=2e-5)
        assert w.end_sample - w.start_sample == 16000
    # the tail after the last regular window is covered by one window aligned to the end
    assert abs(windows[-1].end_sample - SIGNAL.shape[0]) < 4  # within one 2 kHz sample


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 20000), min_size=1, max_size=12))
def test_block_sizes_do_not_change_windows(blocks: list[int]) -> None:
    ref = run([SIGNAL.shape[0]])
    got = run(blocks)
    assert [(w.index, w.start_sample, w.end_sample) for w in got] == \
        [(w.index, w.start_sample, w.end_sample) for w in ref]
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a.features, b.features, atol=1e-6)


@pytest.mark.parametrize(("hop_s", "seconds", "blocks"),
                         [(5.0, 23.3, 3000), (0.5, 9.04, 7000), (2.0, 11.0, 40000)])
def test_every_window_including_the_last_holds_its_own_samples(hop_s: float, seconds: float,
                                                                blocks: int) -> None:
    x = np.random.default_rng(3).normal(0, 0.1, (int(8000 * seconds), 1)).astype(np.float32)
    w = Windower(CHAIN, 8000, 1, segment_s=2.0, hop_s=hop_s)
    windows = [win for i in range(0, x.shape[0], blocks) for win in w.push(x[i:i + blocks])]
    windows += w.flush()
    ref = resample_poly(x.astype(np.float64), 1, 4, axis=0)
    assert abs(windows[-1].end_sample - x.shape[0]) < 4  # the tail is looked at
    for win in windows:
        k = win.start_sample // 4
        expect = CHAIN.apply(ref[k:k + 4000].T.astype(np.float32))
        np.testing.assert_allclose(win.features, expect, atol=2e-5)


def test_hop_shorter_than_a_sample_is_refused() -> None:
    from pamlive.errors import ConfigError

    with pytest.raises(ConfigError, match="hop"):
        Windower(CHAIN, 8000, 1, 2.0, 0.0001)


def test_a_clip_shorter_than_a_window_is_scored_once_padded_with_silence() -> None:
    """A 1.6-s call-library clip (PAMGuard's southern right whale example is one) gives
    one window: the clip followed by silence, features as scipy's resampling of the
    padded clip gives them. Before, such a file gave no window and no word."""
    clip = np.random.default_rng(5).normal(0, 0.1, (int(8000 * 1.6), 1)).astype(np.float32)
    w = Windower(CHAIN, 8000, 1, segment_s=2.0, hop_s=0.5)
    windows = w.push(clip) + w.flush()
    assert [(win.index, win.start_sample) for win in windows] == [(0, 0)]
    ref = resample_poly(np.r_[clip[:, 0], np.zeros(8000)].astype(np.float64), 1, 4)[:4000]
    mid = slice(2, 28)  # frames clear of the resampler's edges at the clip's end
    np.testing.assert_allclose(windows[0].features[0][mid],
                               CHAIN.apply(ref[None].astype(np.float32))[0][mid], atol=2e-5)
    empty = Windower(CHAIN, 8000, 1, segment_s=2.0, hop_s=0.5)
    assert empty.flush() == []  # no audio at all: nothing to look at
