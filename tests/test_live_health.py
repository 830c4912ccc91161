"""The health body is a pure function of counter snapshots."""

from __future__ import annotations

import dataclasses

import numpy as np

from pamlive.live.health import DEAF_AFTER_S, Part, Snapshot, health_body


def snapshot(**changes) -> Snapshot:
    base = Snapshot(
        now=100.0, started=10.0, running=True, last_audio_at=99.5, sample_rate=2000,
        channels=2, written=180_000, capture={"callbacks": 90, "frames": 180_000,
                                              "overflows": 0, "status_flags": 0},
        callback_errors=0, ring_capacity=60_000, ring_fill=0.01, ring_lost=0, windows=88,
        window_drops=0, window_queue_fill=0.0, batches=40, mean_batch_ms=3.25,
        inference_errors=0, score_drops=0, publish_drops=0,
        latency_ms={"last": 5.0, "median": 4.0, "p95": 9.0}, level_sumsq=(0.0, 0.0),
        level_count=0, failed=False, source_failed=False, watchdog_status="ok",
        watchdog_flags=())
    return dataclasses.replace(base, **changes)


def test_same_snapshots_same_body() -> None:
    before, now = snapshot(), snapshot(now=101.0, written=182_000)
    assert health_body(now, before) == health_body(now, before)
    body = health_body(now, before)
    assert body["status"] == "ok" and body["flags"] == []
    assert body["stream_time_s"] == 91.0 and body["uptime_s"] == 91.0


def test_flags_count_what_grew_since_the_last_health() -> None:
    before = snapshot(capture={"callbacks": 90, "frames": 180_000, "overflows": 2,
                               "status_flags": 2}, ring_lost=500)
    same = snapshot(capture=before.capture, ring_lost=500, now=101.0)
    assert health_body(same, before)["flags"] == []  # old losses: counted, not re-flagged
    assert health_body(same, before)["drops"]["ring_samples"] == 500
    grew = snapshot(capture={**before.capture, "overflows": 3}, ring_lost=900, now=101.0)
    body = health_body(grew, before)
    assert body["flags"] == ["input_overflow", "ring_overrun"] and body["status"] == "degraded"


def test_no_audio_for_too_long_is_deaf() -> None:
    body = health_body(snapshot(now=99.5 + DEAF_AFTER_S + 0.1), None)
    assert body["status"] == "deaf" and "no_audio" in body["flags"]
    ended = snapshot(now=200.0, running=False)  # the input ended: silence is expected
    assert "no_audio" not in health_body(ended, None)["flags"]


def test_levels_are_the_rms_since_the_last_health() -> None:
    rng = np.random.default_rng(1)
    first, second = rng.standard_normal((2000, 2)) * 0.1, rng.standard_normal((2000, 2)) * 0.01
    s1 = tuple((first ** 2).sum(axis=0))
    s2 = tuple((first ** 2).sum(axis=0) + (second ** 2).sum(axis=0))
    before = snapshot(level_sumsq=s1, level_count=2000)
    now = snapshot(level_sumsq=s2, level_count=4000)
    want = 20 * np.log10(np.sqrt((second ** 2).mean(axis=0)))
    np.testing.assert_allclose(health_body(now, before)["level_dbfs"], want, atol=0.05)
    assert health_body(before, before)["level_dbfs"] == [None, None]


def test_parts_add_sections_and_flags() -> None:
    clips = Part("clips", {"written": 3, "failed": 1}, ("clips.write_failed",))
    log = Part("log", {"rows": 3, "unlogged": 2}, ("log.disk_full",), degrades=True)
    body = health_body(snapshot(parts=(clips,)), None)
    assert body["clips"] == {"written": 3, "failed": 1}
    assert body["flags"] == ["clips.write_failed"] and body["status"] == "ok"
    body = health_body(snapshot(parts=(clips, log), watchdog_flags=("monitor.degraded",),
                                watchdog_status="degraded"), None)
    assert body["flags"] == ["monitor.degraded", "log.disk_full", "clips.write_failed"]
    assert body["status"] == "degraded" and body["log"] == {"rows": 3, "unlogged": 2}
    assert health_body(snapshot(parts=(log,)), None)["status"] == "degraded"
