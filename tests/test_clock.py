"""The sample clock against a simulated sound card: known drift, a known loss, host jitter."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from pamlive.clock import SampleClock, utc_at_sample

RATE = 2000
HOP_S = 1.0  # the default [model] hop_s: "within one hop of the truth"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def simulate(clock: SampleClock | None, *, drift_ppm: float, hours: float, lost_at_s: float,
             lost_samples: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A card running ``drift_ppm`` fast that loses ``lost_samples`` at ``lost_at_s``.

    Once a second the host sees the newest sample arrive 10..30 ms after it was taken (the
    block latency plus scheduling jitter), as the engine's clock feeder does. Returns, for
    every observation, the clock's UTC of that sample (at that moment) and the truth.
    """
    rng = np.random.default_rng(seed)
    card_rate = RATE * (1 + drift_ppm * 1e-6)
    got, truth = [], []
    lost = 0
    if clock is not None:
        clock.anchor(0, T0)
    for second in range(1, round(hours * 3600)):
        if second == round(lost_at_s):
            lost = lost_samples
            first_after = round(second * card_rate) - lost  # the first sample after the gap
            if clock is not None:
                clock.anchor(first_after, T0 + second + rng.uniform(0.01, 0.03))
        sample = round(second * card_rate) - lost
        if clock is not None:
            clock.observe(sample, T0 + second + rng.uniform(0.01, 0.03))
            got.append(clock.utc_s(sample))
        else:
            got.append(utc_at_sample(datetime.fromtimestamp(T0, UTC), sample, RATE).timestamp())
        truth.append(T0 + second)
    return np.array(got), np.array(truth)


def test_utc_stays_within_a_hop_across_an_overflow_and_100_ppm_drift() -> None:
    clock = SampleClock(RATE)
    got, truth = simulate(clock, drift_ppm=100.0, hours=4.0, lost_at_s=3600.0,
                          lost_samples=5 * RATE)
    err = np.abs(got - truth)
    assert err.max() < HOP_S, err.max()
    assert np.median(err[600:]) < 0.05  # settled: within the arrival jitter, not a hop
    assert clock.anchors == 2 and -110 < clock.drift_ppm < -90  # a fast card: fewer s/sample


def test_the_nominal_clock_would_miss_by_more_than_a_hop() -> None:
    """The same card on the plain start + n / rate clock: the test above can fail."""
    got, truth = simulate(None, drift_ppm=100.0, hours=4.0, lost_at_s=3600.0,
                          lost_samples=5 * RATE)
    assert np.abs(got - truth).max() > 3 * HOP_S  # 5 s lost, 0.4 s drift
    got, truth = simulate(None, drift_ppm=100.0, hours=4.0, lost_at_s=1e9, lost_samples=0)
    assert np.abs(got - truth).max() > HOP_S  # drift alone: 1.4 s after four hours


def test_slewing_keeps_utc_continuous_and_increasing() -> None:
    clock = SampleClock(RATE)
    simulate(clock, drift_ppm=-100.0, hours=1.0, lost_at_s=1e9, lost_samples=0)
    samples = np.arange(0, 3599 * RATE, RATE // 4)
    t = np.array([clock.utc_s(int(s)) for s in samples])
    steps = np.diff(t)
    assert np.all(steps > 0)
    np.testing.assert_allclose(steps, 0.25, rtol=2 * clock.max_slew)  # no jumps, only slew


def test_a_lasting_large_error_steps_a_stalled_thread_does_not() -> None:
    clock = SampleClock(RATE, step_s=0.5, window=8)
    clock.anchor(0, T0)
    clock.observe(RATE, T0 + 1.0 + 3.0)  # one arrival 3 s late: the reader was stalled
    assert clock.anchors == 1 and abs(clock.utc_s(RATE) - (T0 + 1.0)) < 1e-6
    for k in range(2, 10):  # from now on every arrival says: two seconds off
        clock.observe(k * RATE, T0 + k + 2.0)
    assert clock.anchors == 2  # a step, not a slow slew
    assert abs(clock.utc_s(9 * RATE) - (T0 + 11.0)) < 0.01


def test_an_unanchored_clock_refuses() -> None:
    with pytest.raises(RuntimeError, match="no anchor"):
        SampleClock(RATE).utc_s(0)


class FakeCard:
    """A live source whose blocks the test writes itself, at chosen host times."""

    live = True
    name = "fake card"
    sample_rate = RATE
    channels = 1
    finished = False
    error = None

    def __init__(self, start_utc: datetime) -> None:
        from pamlive.sources import CaptureCounters

        self.counters = CaptureCounters()
        self.start_utc = start_utc

    def start(self, ring) -> None:
        pass

    def stop(self) -> None:
        pass


def test_capture_re_anchors_the_clock_at_the_first_sample_after_an_overflow() -> None:
    """The engine's capture stage: blocks arrive 10 ms after they were taken; two seconds
    of audio are lost upstream at t = 10 s (PortAudio flags the next block)."""
    import time as _time

    from pamlive.live.capture import Capture

    card = FakeCard(datetime.fromtimestamp(T0, UTC))
    capture = Capture(card, ring_seconds=30.0)
    mono_minus_wall = _time.monotonic() - _time.time()
    block, taken, samples = RATE // 10, 0.0, []
    for k in range(300):  # 30 s of blocks of 0.1 s
        if k == 100:
            taken += 2.0  # the loss: these samples never reach us
            card.counters.overflow_sample = capture.ring.written
            card.counters.overflows += 1
        first = capture.ring.written
        taken += 0.1
        capture.ring.write(np.zeros((block, 1), np.float32),
                           arrival=T0 + taken + 0.01 + mono_minus_wall)
        capture.sync_clock()
        samples.append((first, T0 + taken - 0.1))  # first sample of the block, its truth
    errors = [capture.utc(s).timestamp() - truth for s, truth in samples]
    assert max(abs(e) for e in errors) < 0.05, max(errors, key=abs)
    nominal = [T0 + s / RATE - truth for s, truth in samples]
    assert max(abs(e) for e in nominal) > 1.9  # without the re-anchor: two seconds late
    assert capture.clock.anchors == 2
