import numpy as np

from pamlive.detection import Detection, Onset, WindowMerger

CLASSES = ["noise", "right_whale"]


def merger(max_merge: int = 10) -> WindowMerger:
    return WindowMerger(CLASSES, {"noise": 1.0, "right_whale": 0.5},
                        {"noise": False, "right_whale": True}, max_merge, 1000, (47.0, 357.0))


def scores(*per_channel: float) -> np.ndarray:
    return np.array([[1 - s, s] for s in per_channel], np.float32)


def feed(m: WindowMerger, series: list[tuple[float, ...]]) -> list:
    out = []
    for k, s in enumerate(series):
        out += m.push(k, k * 1000, k * 1000 + 2000, scores(*s))
    return out + m.flush(len(series) * 1000 + 1000)


def test_consecutive_positive_windows_merge_and_close_at_first_negative() -> None:
    dets = feed(merger(), [(0.1,), (0.7,), (0.9,), (0.6,), (0.2,), (0.8,), (0.1,)])
    assert [(d.start_sample, d.end_sample, d.n_windows) for d in dets] == [
        (1000, 5000, 3), (5000, 7000, 1)]
    assert dets[0].score == np.float32(0.9)
    assert dets[0].ready_sample == 4000 + 2000  # the closing (negative) window's end
    assert dets[0].low_freq == 47.0 and dets[0].class_name == "right_whale"


def test_max_merge_splits_long_runs() -> None:
    dets = feed(merger(max_merge=2), [(0.9,)] * 5)
    assert [d.n_windows for d in dets] == [2, 2, 1]
    assert [d.start_sample for d in dets] == [0, 2000, 4000]


def test_channels_merge_into_one_detection() -> None:
    dets = feed(merger(), [(0.1, 0.1, 0.1), (0.6, 0.95, 0.2), (0.1, 0.7, 0.8), (0.1, 0.1, 0.1)])
    assert len(dets) == 1
    assert dets[0].channels == [0, 1, 2]
    assert dets[0].best_channel == 1
    assert dets[0].scores["right_whale"] == np.float32(0.95)


def test_gap_in_window_sequence_closes() -> None:
    m = merger()
    assert m.push(0, 0, 2000, scores(0.9)) == []
    closed = m.push(2, 2000, 4000, scores(0.9))  # window 1 was lost
    assert len(closed) == 1 and closed[0].n_windows == 1
    assert len(m.flush()) == 1


def test_non_binary_class_never_detects() -> None:
    dets = feed(merger(), [(0.0,), (0.0,)])  # noise score 1.0 but binary=False
    assert dets == []


def events_of(m: WindowMerger, series: list[tuple[float, ...]]) -> list:
    out: list = []
    for k, s in enumerate(series):
        out += m.push_events(k, k * 1000, k * 1000 + 2000, scores(*s))
    return out


def test_the_opening_window_is_reported_at_once_with_the_score_so_far() -> None:
    m = merger()
    assert m.push_events(0, 0, 2000, scores(0.1, 0.2)) == []
    [onset] = m.push_events(1, 1000, 3000, scores(0.7, 0.3))
    assert isinstance(onset, Onset)
    assert (onset.class_name, onset.start_sample, onset.end_sample) == ("right_whale", 1000, 3000)
    assert onset.score == np.float32(0.7) and onset.channels == [0]
    assert onset.scores["right_whale"] == np.float32(0.7)
    assert m.push_events(2, 2000, 4000, scores(0.95, 0.8)) == []  # grows: nothing new
    assert onset.score == np.float32(0.7) and onset.channels == [0]  # a snapshot, unchanged
    [closed] = m.push_events(3, 3000, 5000, scores(0.1, 0.1))
    assert isinstance(closed, Detection)
    assert (closed.start_sample, closed.score, closed.channels) == (1000, np.float32(0.95), [0, 1])


def test_every_detection_has_exactly_one_onset_at_its_start() -> None:
    rng = np.random.default_rng(7)
    series = [tuple(rng.uniform(0, 1, 2)) for _ in range(300)]
    m = merger(max_merge=4)
    events = events_of(m, series) + m.flush(301 * 1000)
    onsets = [e for e in events if isinstance(e, Onset)]
    closed = [e for e in events if isinstance(e, Detection)]
    assert len(onsets) == len(closed) > 20
    assert [o.start_sample for o in onsets] == [d.start_sample for d in closed]
    # an onset comes before its detection closes, and after the previous one closed
    order = [(type(e).__name__, e.start_sample) for e in events]
    for k, (kind, start) in enumerate(order):
        assert kind == ("Onset" if k % 2 == 0 else "Detection")
        assert start == order[k - k % 2][1]
    # push() still returns exactly the closed detections
    plain = merger(max_merge=4)
    again = [d for k, s in enumerate(series) for d in plain.push(k, k * 1000, k * 1000 + 2000,
                                                                  scores(*s))]
    assert [(d.start_sample, d.end_sample, d.score) for d in again + plain.flush(301 * 1000)] \
        == [(d.start_sample, d.end_sample, d.score) for d in closed]


def test_a_gap_closes_before_the_next_opening_and_max_merge_one_opens_then_closes() -> None:
    m = merger()
    m.push_events(0, 0, 2000, scores(0.9))
    events = m.push_events(2, 2000, 4000, scores(0.9))  # window 1 lost
    assert [type(e) for e in events] == [Detection, Onset]
    one = merger(max_merge=1)
    events = one.push_events(0, 0, 2000, scores(0.9))
    assert [type(e) for e in events] == [Onset, Detection]
