"""The liveness state machine under a fake clock, and the device-reopen policy."""

from __future__ import annotations

import numpy as np
import pytest

from pamlive.config import load_config
from pamlive.errors import ConfigError
from pamlive.field.recovery import DeviceRecovery, find_input_device
from pamlive.field.watchdog import LivenessWatchdog, State, WatchdogSettings, _channel_stats

RATE = 1000
SETTINGS = WatchdogSettings(
    silence_floor_dbfs=-90.0, silence_s=10.0, stuck_s=5.0, no_callback_s=2.0,
    overflow_max=3, overflow_window_s=10.0, recover_s=5.0,
)
rng = np.random.default_rng(7)


def noise(channels: int = 2) -> np.ndarray:
    return (0.01 * rng.standard_normal((RATE, channels))).astype(np.float32)


class Harness:
    """One block of 1 s per tick, with the capture counter advancing like a real stream."""

    def __init__(self, channels: int = 2) -> None:
        self.now = 0.0
        self.callbacks = 0
        self.overflows = 0
        self.dog = LivenessWatchdog(channels, SETTINGS, now=0.0)
        self.log: list[tuple[float, State, State, tuple[str, ...]]] = []

    def second(self, block: np.ndarray | None, overflows: int = 0) -> None:
        self.now += 1.0
        if block is not None:
            self.callbacks += 10
            self.dog.observe_block(block, self.now)
        self.overflows += overflows
        self.dog.observe_capture(self.callbacks, self.overflows, self.now)
        for t in self.dog.tick(self.now):
            self.log.append((t.time, t.previous, t.state, t.reasons))

    def states(self) -> list[tuple[float, str]]:
        return [(t, new.value) for t, _, new, _ in self.log]


def test_live_input_stays_ok():
    h = Harness()
    for _ in range(60):
        h.second(noise())
    assert h.log == [] and h.dog.status == "ok" and h.dog.flags == []


def test_no_callbacks_is_deaf_then_recovers_after_recover_s():
    h = Harness()
    for _ in range(5):
        h.second(noise())
    for _ in range(4):  # the USB interface is unplugged: no callbacks at all
        h.second(None)
    assert h.states() == [(7.0, "deaf")]  # 2 s without callbacks (last at t=5)
    assert h.dog.status == "deaf"
    assert h.dog.flags == ["monitor.deaf", "capture.no_callbacks"]
    assert h.dog.needs_restart
    assert "no audio callbacks for 2.0 s" in h.log[0][3]
    h.dog.stream_reopened(h.now)
    for _ in range(7):
        h.second(noise())
    assert h.states() == [(7.0, "deaf"), (10.0, "recovering"), (15.0, "ok")]
    assert h.log[-1][3] == ("input live on every channel",)
    assert h.dog.flags == [] and not h.dog.needs_restart


def test_one_silent_channel_degrades_all_silent_is_deaf():
    h = Harness()
    h.second(noise())
    for _ in range(12):  # channel 1's preamp dies: digital zero
        b = noise()
        b[:, 1] = 0.0
        h.second(b)
    assert h.states() == [(12.0, "degraded")]  # zero since t=2, 10 s later
    assert h.dog.flags == ["monitor.degraded", "channel.1.zero"]
    assert h.dog.status == "degraded" and not h.dog.needs_restart
    for _ in range(11):
        h.second(np.zeros((RATE, 2), np.float32))
    # channel 0 has been zero since t=14: 10 s later both are dead -> deaf
    assert h.states() == [(12.0, "degraded"), (24.0, "deaf")]
    assert set(h.dog.flags) == {"monitor.deaf", "channel.0.zero", "channel.1.zero"}
    assert h.dog.needs_restart  # every channel digital zero: worth reopening


def test_below_floor_is_silent_above_floor_is_live():
    h = Harness()
    for _ in range(11):
        b = rng.standard_normal((RATE, 2)).astype(np.float32)
        b[:, 0] *= 1e-6  # -120 dBFS: a dead preamp's self-noise, under the -90 dBFS floor
        b[:, 1] *= 1e-4  # -80 dBFS: a quiet sea, but alive
        h.second(b)
    assert h.states() == [(11.0, "degraded")]
    assert h.dog.flags == ["monitor.degraded", "channel.0.silent"]
    assert not h.dog.needs_restart  # reopening does not fix a dead preamp


def test_stuck_and_repeated_samples():
    h = Harness()
    constant = noise()
    constant[:, 0] = 0.25  # a DC-stuck converter
    for _ in range(7):
        h.second(constant.copy())
    # channel 0 stuck from t=1; channel 1 repeats its buffer (a wedged driver) from t=2
    assert h.states() == [(6.0, "degraded"), (7.0, "deaf")]
    assert set(h.dog.flags) == {"monitor.deaf", "channel.0.stuck", "channel.1.stuck"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pass_channel_stats_equal_numpys_reductions(dtype):
    """The compiled pass gives what numpy's any / ptp / block equality / mean square give,
    bit for bit (several channels: numpy sums those in frame order too), NaN included."""
    gen = np.random.default_rng(3)
    previous = None
    for trial in range(300):
        frames = int(gen.choice([1, 3, 960, 1024]))
        block = (gen.standard_normal((frames, 4)) * 10.0 ** gen.uniform(-6, 0)).astype(dtype)
        block[:, trial % 4] = 0.0 if trial % 3 == 0 else block[0, trial % 4]
        if trial % 5 == 0 and previous is not None and previous.shape == block.shape:
            block[:, 1] = previous[:, 1]  # a repeated buffer
        if trial % 7 == 0:
            block[gen.integers(frames), 2] = np.nan
        repeat = previous is not None and previous.shape == block.shape
        zero, constant = np.empty(4, np.bool_), np.empty(4, np.bool_)
        power = np.empty(4)
        _channel_stats(block, previous if repeat else block, repeat, zero, constant, power)
        want_constant = np.ptp(block, axis=0) == 0
        if repeat:
            want_constant |= np.all(block == previous, axis=0)
        np.testing.assert_array_equal(zero, ~np.any(block, axis=0))
        np.testing.assert_array_equal(constant, want_constant)
        np.testing.assert_array_equal(power, np.mean(np.square(block, dtype=np.float64), axis=0))
        previous = block


def test_sustained_overflows_degrade_isolated_ones_do_not():
    h = Harness()
    for _ in range(20):
        h.second(noise(), overflows=1 if h.now % 5 == 0 else 0)  # 2 per 10 s: fine
    for _ in range(10):
        h.second(noise())
    assert h.log == []
    for _ in range(3):
        h.second(noise(), overflows=2)  # t = 31, 32, 33
    assert h.states() == [(32.0, "degraded")]
    assert h.dog.flags == ["monitor.degraded", "capture.overflows"]
    for _ in range(16):
        h.second(noise())
    # at t=43 only the 33 s burst (2) is left in the window; 5 s of clean input: ok
    assert h.states() == [(32.0, "degraded"), (43.0, "recovering"), (48.0, "ok")]


def test_relapse_during_recovery_returns_to_deaf():
    h = Harness()
    h.second(noise())
    for _ in range(3):
        h.second(None)
    h.second(noise())
    h.second(noise())
    for _ in range(3):
        h.second(None)
    assert h.states() == [(3.0, "deaf"), (5.0, "recovering"), (8.0, "deaf")]


def test_short_dropout_below_thresholds_is_ignored():
    h = Harness()
    for i in range(30):
        b = noise()
        if 10 <= i < 18:
            b[:, 0] = 0.0  # 8 s of zeros < silence_s
        h.second(b)
    assert h.log == []


def test_transition_alert_body():
    h = Harness()
    h.second(noise())
    h.second(None)
    h.second(None)
    assert h.dog.tick(h.now) == []  # no change since the previous tick
    assert [(prev, new) for _, prev, new, _ in h.log] == [(State.OK, State.DEAF)]
    transition = LivenessWatchdog(1, SETTINGS, now=0.0).tick(5.0)[0]
    msg = transition.alert_body("2026-01-01T00:00:05Z")
    assert msg["class"] == "monitor.deaf" and msg["status"] == "deaf"
    assert msg["previous"] == "ok" and msg["reasons"] == ["no audio callbacks for 5.0 s"]
    assert msg["schema"] == "pamlive.health_alert/1"


def test_wrong_block_shape_is_rejected():
    with pytest.raises(ValueError):
        LivenessWatchdog(2, SETTINGS, 0.0).observe_block(np.zeros((10, 3), np.float32), 1.0)


def test_backoff_doubles_to_the_cap_and_resets():
    r = DeviceRecovery(initial_s=1.0, max_s=8.0)
    assert not r.due(0.0)
    r.lost(100.0)
    assert r.due(100.0)
    delays = [r.failed(100.0) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert not r.due(107.9) and r.due(108.0)
    r.lost(108.0)  # still the same outage: no reset
    assert r.attempts == 6
    r.succeeded()
    assert not r.active and r.recoveries == 1
    r.lost(200.0)
    assert r.failed(200.0) == 1.0


def test_device_found_again_by_stable_name_under_a_new_index():
    before = [
        {"index": 0, "name": "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "max_input_channels": 2},
        {"index": 3, "name": "Scarlett 4i4 USB: Audio (hw:2,0)", "max_input_channels": 4},
    ]
    after_replug = [
        before[0],
        {"index": 1, "name": "pulse", "max_input_channels": 32},
        {"index": 5, "name": "Scarlett 4i4 USB: Audio (hw:3,0)", "max_input_channels": 4},
    ]
    assert find_input_device("Scarlett 4i4", before, channels=4) == 3
    assert find_input_device("Scarlett 4i4", after_replug, channels=4) == 5
    assert find_input_device("Scarlett 4i4", before[:1], channels=4) is None  # unplugged
    assert find_input_device("a", after_replug) is None  # ambiguous: never guess
    assert find_input_device("pulse", after_replug) == 1


def test_settings_from_config_table():
    s = load_config(overrides={"watchdog": {"silence_s": 30, "overflow_max": 5}}).watchdog
    assert s.silence_s == 30.0 and isinstance(s.silence_s, float) and s.overflow_max == 5
    with pytest.raises(ConfigError, match=r"\[watchdog\] silence_sec"):
        load_config(overrides={"watchdog": {"silence_sec": 3}})
    with pytest.raises(ConfigError, match=r"\[watchdog\] recover_s must be positive"):
        load_config(overrides={"watchdog": {"recover_s": 0}})
    with pytest.raises(ConfigError, match=r"\[watchdog\] overflow_max must be int"):
        load_config(overrides={"watchdog": {"overflow_max": 2.5}})
