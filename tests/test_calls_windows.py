"""Event windows: batdetect2's chunks (hop = segment, the tail as a shorter chunk) and
overlapping ones; de-duplication of calls found twice."""

import numpy as np
import pytest

from pamlive.calls.call import Call
from pamlive.calls.dedup import CallDeduplicator
from pamlive.dsp.chain import TransformChain, TransformSpec
from pamlive.windows import EventWindower

RATE = 1000


def _windows(total: int, segment_s: float, hop_s: float, blocks: list[int]):
    chain = TransformChain([TransformSpec("load_audio", {"sr": RATE})])
    x = np.arange(total, dtype=np.float32)[:, None] * np.array([[1.0, -1.0]], np.float32)
    w = EventWindower(chain, RATE, 2, segment_s, hop_s)
    out, at = [], 0
    for n in blocks:
        out += w.push(x[at:at + n])
        at += n
    out += w.push(x[at:])
    return out + w.flush()


@pytest.mark.parametrize("blocks", [[], [1], [777, 2500, 13], [3000, 3000]])
def test_chunks_as_batdetect2_cuts_them(blocks: list[int]) -> None:
    """8 s in 3 s chunks: 3 + 3 + 2 s (batdetect2's iterate_over_chunks)."""
    got = _windows(8000, 3.0, 3.0, blocks)
    assert [(w.start_sample, w.end_sample) for w in got] == [(0, 3000), (3000, 6000),
                                                             (6000, 8000)]
    for w in got:
        np.testing.assert_array_equal(w.features[0], np.arange(w.start_sample, w.end_sample))
        np.testing.assert_array_equal(w.features[1], -w.features[0])
    assert [w.index for w in got] == [0, 1, 2]


def test_overlapping_windows_end_with_the_tail_from_the_grid() -> None:
    got = _windows(8000, 3.0, 1.5, [1234])
    assert [(w.start_sample, w.end_sample) for w in got] == [
        (0, 3000), (1500, 4500), (3000, 6000), (4500, 7500), (6000, 8000)]


@pytest.mark.parametrize(("total", "spans"), [(6000, [(0, 3000), (3000, 6000)]),
                                              (1200, [(0, 1200)]), (0, [])])
def test_no_empty_tail_and_short_streams(total: int, spans: list[tuple[int, int]]) -> None:
    got = _windows(total, 3.0, 3.0, [])
    assert [(w.start_sample, w.end_sample) for w in got] == spans


def _call(start: float, end: float, low: float = 40e3, high: float = 60e3, channel: int = 0,
          prob: float = 0.5) -> Call:
    return Call(start, end, low, high, "x", prob, prob, channel, {"x": prob})


def _run(d: CallDeduplicator, pushes: list[tuple[list[Call], float, float]]) -> list[Call]:
    out = []
    for calls, start, end in pushes:
        out += d.push(calls, start, end)
    return out + d.flush()


def test_the_call_further_from_its_window_edges_is_kept() -> None:
    d = CallDeduplicator(hop_s=1.5)
    first = _call(2.90, 2.905, prob=0.3)  # 95 ms from window 0's end
    assert d.push([first], 0.0, 3.0) == []  # window 1 (from 1.5 s) may find it again
    second = _call(2.9002, 2.9051, prob=0.6)  # 1.4 s inside window 1
    assert d.push([second], 1.5, 4.5) == [second]  # window 2 starts at 3 s: final
    assert d.flush() == [] and d.merged == 1
    early = _call(1.60, 1.605)  # 1.395 s from window 0's end, 0.1 s from window 1's start
    d = CallDeduplicator(hop_s=1.5)
    assert _run(d, [([early], 0.0, 3.0), ([_call(1.6001, 1.6052)], 1.5, 4.5)]) == [early]


def test_a_call_in_three_windows_is_reported_once() -> None:
    d = CallDeduplicator(hop_s=1.0)
    out = _run(d, [([_call(2.5 + 1e-4 * k, 2.506)], float(k), k + 3.0) for k in range(3)])
    assert len(out) == 1 and d.merged == 2
    assert out[0].start_s == pytest.approx(2.5001)  # window 1: 1.5 s from its start and end


def test_distinct_calls_stay_distinct() -> None:
    d = CallDeduplicator(hop_s=1.5)
    out = _run(d, [
        ([_call(2.0, 2.005), _call(2.0, 2.005, channel=1),  # another channel
          _call(2.2, 2.205, low=20e3, high=30e3)], 0.0, 3.0),
        ([_call(2.0, 2.005), _call(2.0, 2.005, low=70e3, high=90e3),  # another band
          _call(2.3, 2.305)], 1.5, 4.5),  # later in time
    ])
    assert len(out) == 5 and d.merged == 1


def test_no_merging_without_overlap() -> None:
    """hop = segment (batdetect2's chunks): a box poking past its chunk's end and one at
    the next chunk's start are two calls, as batdetect2 reports them."""
    d = CallDeduplicator(hop_s=3.0)
    a, b = _call(2.998, 3.004), _call(3.0015, 3.006)
    assert d.push([a], 0.0, 3.0) == [a]  # its window ends where the next one starts
    b_late = _call(5.998, 6.004)
    assert d.push([b, b_late], 3.0, 6.0) == [b, b_late]
    assert d.flush() == [] and d.merged == 0


def test_one_to_one_matching() -> None:
    d = CallDeduplicator(hop_s=1.5)
    out = _run(d, [([_call(2.000, 2.006), _call(2.004, 2.010)], 0.0, 3.0),
                   ([_call(2.0041, 2.0101)], 1.5, 4.5)])
    assert len(out) == 2 and d.merged == 1
    assert out[0].start_s == 2.000


def test_calls_are_released_once_no_later_window_can_hold_them() -> None:
    d = CallDeduplicator(hop_s=1.5)
    early, late, later = _call(1.0, 1.01), _call(2.0, 2.01), _call(5.2, 5.21)
    assert d.push([early, late], 0.0, 3.0) == [early]  # ends before the next window starts
    assert d.push([], 1.5, 4.5) == [late]  # ends before window 2 (from 3 s) starts
    assert d.push([later], 3.0, 6.0) == []  # window 3 (from 4.5 s) may find it again ...
    assert d.push([], 4.5, 7.5) == [later]  # ... and window 4 (from 6 s) cannot
