"""RingBuffer: sample counters, wrap-around, overwrite accounting, arrival times."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamlive.buffers import RingBuffer


def _ramp(start: int, frames: int, channels: int) -> np.ndarray:
    """Sample value = index + channel / 4 (exact in float32), so any misplaced sample shows."""
    idx = np.arange(start, start + frames, dtype=np.float32)[:, None]
    return idx + np.arange(channels, dtype=np.float32)[None, :] / 4


@given(
    blocks=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=40),
    reads_every=st.integers(min_value=1, max_value=5),
)
@settings(max_examples=60, deadline=None)
def test_reader_gets_every_sample_or_counts_it_lost(blocks: list[int], reads_every: int) -> None:
    ring = RingBuffer(channels=3, capacity=50)
    expected_next = 0
    got_frames = 0
    written = 0
    for i, frames in enumerate(blocks):
        ring.write(_ramp(written, frames, 3))
        written += frames
        if i % reads_every == 0 or i == len(blocks) - 1:
            res = ring.read()
            assert res.start_sample == expected_next + res.lost
            ref = _ramp(res.start_sample, res.data.shape[0], 3)
            np.testing.assert_array_equal(res.data, ref)
            expected_next = res.start_sample + res.data.shape[0]
            got_frames += res.data.shape[0]
    assert expected_next == written
    assert got_frames + ring.lost_samples == written
    # Never more than a ring's worth unread: whatever was lost was beyond the capacity.
    assert ring.read_position == ring.written


def test_overrun_skips_forward_and_counts_exactly() -> None:
    ring = RingBuffer(channels=2, capacity=100)
    ring.write(_ramp(0, 60, 2))
    ring.write(_ramp(60, 90, 2))  # 150 written, capacity 100: samples 0..49 are gone
    res = ring.read()
    assert res.lost == 50 and ring.lost_samples == 50
    assert res.start_sample == 50 and res.data.shape == (100, 2)
    np.testing.assert_array_equal(res.data, _ramp(50, 100, 2))


def test_block_longer_than_ring_keeps_newest() -> None:
    ring = RingBuffer(channels=1, capacity=10)
    ring.write(_ramp(0, 25, 1))
    res = ring.read()
    assert (res.start_sample, res.lost) == (15, 15)
    np.testing.assert_array_equal(res.data, _ramp(15, 10, 1))


def test_max_frames_and_fill() -> None:
    ring = RingBuffer(channels=1, capacity=10)
    ring.write(_ramp(0, 8, 1))
    assert ring.fill() == pytest.approx(0.8)
    first = ring.read(max_frames=3)
    assert first.start_sample == 0 and first.data.shape[0] == 3
    rest = ring.read()
    assert rest.start_sample == 3 and rest.data.shape[0] == 5 and ring.fill() == 0.0


def test_arrival_time_lookup() -> None:
    ring = RingBuffer(channels=1, capacity=1000, arrival_slots=4)
    for k in range(6):  # block k covers samples [10k, 10k+10), arrived at t=k
        ring.write(_ramp(10 * k, 10, 1), arrival=float(k))
    assert ring.arrival_time(59) == 5.0
    assert ring.arrival_time(45) == 4.0
    assert ring.arrival_time(30) == 3.0
    assert ring.arrival_time(20) is None  # its table entry and the one before were overwritten
    assert ring.arrival_time(60) is None  # not arrived yet


def test_concurrent_producer_consumer_accounts_for_every_sample() -> None:
    """A real writer thread against a slow reader: data intact, lost + read == written."""
    ring = RingBuffer(channels=2, capacity=256)
    total = 200_000
    done = threading.Event()

    def produce() -> None:
        pos = 0
        while pos < total:
            n = min(64, total - pos)
            ring.write(_ramp(pos, n, 2))
            pos += n
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    got = 0
    nxt = 0
    while not (done.is_set() and ring.read_position == ring.written):
        res = ring.read()
        assert res.start_sample == nxt + res.lost
        np.testing.assert_array_equal(res.data, _ramp(res.start_sample, res.data.shape[0], 2))
        nxt = res.start_sample + res.data.shape[0]
        got += res.data.shape[0]
    t.join()
    assert got + ring.lost_samples == total


def test_wait_wakes_when_the_write_that_brings_the_sample_lands() -> None:
    """The reader sleeps until the sample it needs is written (not a poll, not the
    timeout); it returns at once when the sample is already there, and at the timeout
    when no write comes."""
    ring = RingBuffer(channels=1, capacity=1000)
    ring.write(np.zeros((100, 1), np.float32))
    t0 = time.monotonic()
    ring.wait(100, timeout=30.0)  # already written
    assert time.monotonic() - t0 < 5.0
    t0 = time.monotonic()
    ring.wait(101, timeout=0.2)  # nothing comes
    assert time.monotonic() - t0 >= 0.19 and ring.written == 100
    writes_before = threading.Event()

    def produce() -> None:
        for _ in range(3):  # 150 samples: not yet what the reader needs
            ring.write(np.zeros((50, 1), np.float32))
        writes_before.set()
        time.sleep(0.3)
        ring.write(np.zeros((50, 1), np.float32))  # sample 299: the one awaited

    t = threading.Thread(target=produce)
    t0 = time.monotonic()
    t.start()
    ring.wait(300, timeout=30.0)
    woke = time.monotonic() - t0
    t.join()
    assert writes_before.is_set() and ring.written == 300
    assert 0.29 <= woke < 15.0  # woken by the write, long before the timeout
