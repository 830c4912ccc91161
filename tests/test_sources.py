"""Sources: paced playback, the simulated array, device choice, the capture callback."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pamlive import devices
from pamlive.buffers import RingBuffer
from pamlive.config import SimulatorConfig
from pamlive.devices import DeviceError, DeviceInfo, resolve_device
from pamlive.errors import AudioInputError
from pamlive.sources import CaptureCounters
from pamlive.sources.device import DeviceSource
from pamlive.sources.playback import READ_FRAMES, playback_source, simulator_source
from pamlive.sources.simulator import SimulatedArray


def _write(path: Path, frames: int, channels: int = 2, rate: int = 8000, seed: int = 0
           ) -> np.ndarray:
    data = (np.random.default_rng(seed).standard_normal((frames, channels)) * 0.1)
    data = data.astype(np.float32)
    sf.write(path, data, rate, subtype="FLOAT")
    return data


def _drain(source, ring: RingBuffer, timeout: float = 20.0) -> np.ndarray:
    source.start(ring)
    deadline = time.monotonic() + timeout
    while not source.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    source.stop()
    assert source.finished
    res = ring.read()
    assert res.lost == 0 and res.start_sample == 0
    return res.data


def test_playback_joins_files_in_time_order_on_one_sample_clock(tmp_path) -> None:
    later = _write(tmp_path / "st_20200101_000010.wav", 5000, seed=1)
    first = _write(tmp_path / "st_20200101_000000.wav", 3000, seed=2)
    src = playback_source([tmp_path], speed=1000.0, blocksize=700)
    got = _drain(src, RingBuffer(2, 20000))
    np.testing.assert_array_equal(got, np.concatenate([first, later]))
    assert src.start_utc == datetime(2020, 1, 1, tzinfo=UTC)
    assert src.counters.frames == 8000 and src.counters.callbacks == 5 + 8
    assert src.error is None and (src.sample_rate, src.channels) == (8000, 2)


def test_playback_reads_files_in_large_chunks_but_hands_on_whole_blocks(tmp_path) -> None:
    """A file longer than one read (READ_FRAMES) still arrives in blocks of the asked size."""
    data = _write(tmp_path / "a.wav", READ_FRAMES + 4321, channels=1)
    src = playback_source([tmp_path / "a.wav"], speed=1000.0, blocksize=1000)
    got = _drain(src, RingBuffer(1, data.shape[0]))
    np.testing.assert_array_equal(got, data)
    assert src.counters.callbacks == -(-data.shape[0] // 1000)  # every block full but the last


def test_playback_loop_until_max_frames(tmp_path) -> None:
    data = _write(tmp_path / "a.wav", 1000, channels=1)
    src = playback_source([tmp_path / "a.wav"], speed=1000.0, loop=True, blocksize=300,
                        max_frames=2500)
    got = _drain(src, RingBuffer(1, 5000))
    np.testing.assert_array_equal(got, np.concatenate([data, data, data[:500]]))
    before = datetime.now(UTC)
    assert src.start_utc is not None and src.start_utc <= before  # no time in the name: now


def test_playback_never_runs_ahead_of_its_pace(tmp_path) -> None:
    """At speed s, by wall time t no more than t * s * rate frames (+ one block) exist."""
    _write(tmp_path / "a.wav", 8000, channels=1)
    src = playback_source([tmp_path / "a.wav"], speed=4.0, blocksize=400)
    ring = RingBuffer(1, 10000)
    t0 = time.monotonic()
    src.start(ring)
    samples = []
    while not src.finished:
        samples.append((time.monotonic() - t0, ring.written))
        time.sleep(0.005)
    src.stop()
    for t, written in samples:
        assert written <= t * 4.0 * 8000 + 400
    assert ring.written == 8000 and time.monotonic() - t0 >= 8000 / (4.0 * 8000)


def test_playback_refuses_mixed_formats(tmp_path) -> None:
    _write(tmp_path / "a.wav", 100, channels=1, rate=8000)
    _write(tmp_path / "b.wav", 100, channels=1, rate=16000)
    with pytest.raises(AudioInputError, match=r"b\.wav: 16000 Hz x 1 ch differs"):
        playback_source([tmp_path])


def test_playback_reports_a_bad_file_after_delivering_what_it_could(tmp_path) -> None:
    good = _write(tmp_path / "a_20200101_000000.wav", 4000, channels=1)
    bad = _write(tmp_path / "b_20200101_000001.wav", 4000, channels=1, seed=5)
    bad[2500] = np.nan
    sf.write(tmp_path / "b_20200101_000001.wav", bad, 8000, subtype="FLOAT")
    src = playback_source([tmp_path], speed=1000.0, blocksize=1000)
    got = _drain(src, RingBuffer(1, 10000))
    assert isinstance(src.error, AudioInputError) and "NaN or Inf" in str(src.error)
    np.testing.assert_array_equal(got, np.concatenate([good, bad[:2500]]))  # up to the NaN


def test_simulator_source_delivers_the_arrays_deterministic_stream() -> None:
    cfg = SimulatorConfig(channels=3, samplerate=8000, seed=3)
    src = simulator_source(SimulatedArray(cfg, seed=3), blocksize=512, speed=1000.0,
                           max_frames=20000)
    got = _drain(src, RingBuffer(3, 30000))
    ref = SimulatedArray(cfg, seed=3).read(20000)
    np.testing.assert_array_equal(got, ref)


# -- device choice -------------------------------------------------------------------


FAKE = [
    DeviceInfo(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 48000.0),
    DeviceInfo(3, "SoundTrap ST600 USB (hw:2,0)", "ALSA", 1, 96000.0),
    DeviceInfo(4, "SoundTrap ST600 USB 2 (hw:3,0)", "ALSA", 1, 96000.0),
    DeviceInfo(7, "Zoom F6", "ALSA", 6, 48000.0),
]


@pytest.fixture
def fake_devices(monkeypatch):
    monkeypatch.setattr(devices, "list_devices", lambda: list(FAKE))


def test_device_by_name_part_index_or_exact_name(fake_devices) -> None:
    assert resolve_device("zoom").index == 7
    assert resolve_device(3).name.startswith("SoundTrap ST600 USB (")
    assert resolve_device("4").index == 4
    assert resolve_device("SoundTrap ST600 USB (hw:2,0)").index == 3


@pytest.mark.parametrize(("spec", "message"), [
    ("SoundTrap", r"ambiguous: \[3\] SoundTrap ST600 USB \(hw:2,0\), \[4\] SoundTrap"),
    ("Fireface", r"no input device matches 'Fireface'"),
    (12, r"no input device with index 12"),
])
def test_device_errors_name_the_problem(fake_devices, spec, message) -> None:
    with pytest.raises(DeviceError, match=message):
        resolve_device(spec)


# -- the capture callback -------------------------------------------------------------


@dataclass
class _Status:
    input_overflow: bool = False

    def __bool__(self) -> bool:
        return self.input_overflow


@dataclass
class _TimeInfo:
    currentTime: float = 10.002
    inputBufferAdcTime: float = 10.0


def _callback_only(channels: int, ring: RingBuffer | None) -> DeviceSource:
    """A DeviceSource without a stream: just its callback and counters."""
    src = object.__new__(DeviceSource)
    src.sample_rate, src.channels = 48000, channels
    src.counters = CaptureCounters()
    src._ring = ring
    src._start_wall = None
    return src


def test_callback_copies_counts_overflows_and_never_allocates_blocks() -> None:
    ring = RingBuffer(4, 48000)
    src = _callback_only(4, ring)
    block = np.random.default_rng(0).standard_normal((4096, 4)).astype(np.float32)
    src._callback(block, 4096, _TimeInfo(), _Status())  # warm-up (first-block clock)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(20):
            src._callback(block, 4096, _TimeInfo(), _Status(input_overflow=i % 5 == 0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < block.nbytes // 4  # no temporary the size of a block
    assert src.counters.callbacks == 21 and src.counters.frames == 21 * 4096
    assert src.counters.overflows == 4 and src.counters.status_flags == 4
    np.testing.assert_array_equal(ring.read().data[-4096:], block)
    assert abs(src.start_utc.timestamp() - (time.time() - 0.002)) < 5.0


def test_callback_swallows_errors_and_counts_them() -> None:
    src = _callback_only(2, ring=None)  # writing to a missing ring raises inside
    src._callback(np.zeros((64, 2), np.float32), 64, _TimeInfo(), _Status())
    assert src.counters.errors == 1 and src.counters.frames == 0
