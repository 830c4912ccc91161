"""The simulator's array geometry, single-channel transients and ground truth."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from pamlive.config import SimulatorConfig
from pamlive.errors import ConfigError
from pamlive.sources.simulator import (
    SimulatedArray,
    square_geometry,
    towed_line_geometry,
)

FS = 8000


def _sim(geometry, **kw) -> SimulatedArray:
    base = {"channels": len(geometry), "samplerate": FS, "geometry": geometry,
            "ship_probability": 0.0, "seed": 3}
    return SimulatedArray(SimulatorConfig(**(base | kw)))


def test_towed_line_calls_arrive_with_the_plane_wave_delay() -> None:
    sim = _sim(towed_line_geometry(2, 100.0), call_interval_s=6.0)
    sim.read(FS * 60)
    for call in sim.ground_truth:
        # element 1 trails 100 m behind element 0 (+y is forward): it hears a source
        # at bearing b later by 100 cos(b) / c
        expected = 100.0 * math.cos(math.radians(call.bearing_deg)) / 1500.0 * FS
        assert call.channel_starts[1] - call.channel_starts[0] == pytest.approx(expected, abs=1)


def test_square_geometry_is_forty_metres_a_side() -> None:
    g = np.array(square_geometry(40.0))
    d = np.linalg.norm(g[:, None] - g[None], axis=-1)
    assert sorted(np.round(d[np.triu_indices(4, 1)], 6)) == pytest.approx(
        [40, 40, 40, 40, 40 * math.sqrt(2), 40 * math.sqrt(2)])


def test_transients_are_heard_on_their_channel_only() -> None:
    quiet = _sim(square_geometry(40.0), call_interval_s=1e9, seed=9)
    noisy = _sim(square_geometry(40.0), call_interval_s=1e9, seed=9, transient_interval_s=3.0,
                 snr_db_range=(20.0, 20.0))
    a, b = quiet.read(FS * 60), noisy.read(FS * 60)
    assert not quiet.transients
    kinds = {t.kind for t in noisy.transients}
    assert len(noisy.transients) >= 5 and kinds <= {"knock", "flow", "strum"}
    for t in noisy.transients:
        seg = slice(t.start_sample, t.end_sample)
        added = _in_band((b[seg] - a[seg]).astype(np.float64))
        power = (added**2).mean(axis=0)
        others = np.delete(power, t.channel)
        assert power[t.channel] > 0 and np.all(others == 0.0)
        noise = (_in_band(a[seg].astype(np.float64))[:, t.channel] ** 2).mean()
        # the SNR as drawn, over the transient's duration, within a few dB (the noise
        # in one short segment scatters around its long-term level)
        assert 10 * np.log10(power[t.channel] / noise) == pytest.approx(20.0, abs=4.0)


def _in_band(x: np.ndarray) -> np.ndarray:
    """``x`` limited to the simulator's SNR band, 50-250 Hz (ideal FFT filter)."""
    spec = np.fft.rfft(x, axis=0)
    f = np.fft.rfftfreq(x.shape[0], 1 / FS)
    spec[(f < 50) | (f > 250)] = 0
    return np.fft.irfft(spec, x.shape[0], axis=0)


def test_truth_lines_list_calls_and_transients(tmp_path) -> None:
    sim = _sim(square_geometry(40.0), call_interval_s=5.0, transient_interval_s=4.0)
    sim.read(FS * 40)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    path = tmp_path / "truth.jsonl"
    n = sim.write_truth(path, start)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert n == len(rows) == len(sim.ground_truth) + len(sim.transients)
    assert [r["start_sample"] for r in rows] == sorted(r["start_sample"] for r in rows)
    calls = [r for r in rows if r["kind"] == "upcall"]
    first = sim.ground_truth[0]
    assert calls[0]["bearing_deg"] == pytest.approx(first.bearing_deg, abs=1e-3)
    assert calls[0]["start_utc"] == (
        f"2026-03-01T12:00:{first.start_sample / FS:06.3f}Z")
    assert all(r["bearing_deg"] is None and r["kind"] in ("knock", "flow", "strum")
               for r in rows if r["kind"] != "upcall")
    assert all({"start_utc", "end_utc", "bearing_deg", "snr_db", "kind"} <= set(r) for r in rows)


def test_negative_transient_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match="transient_interval_s"):
        _sim(square_geometry(40.0), transient_interval_s=-1.0)


def test_demo_truth_into_a_missing_folder_fails_before_the_run(tmp_path) -> None:
    import subprocess
    import sys
    import time

    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pamlive", "demo", "--headless", "--duration",
                        "30", "--truth", str(tmp_path / "nope" / "truth.jsonl")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"pamlive: error: --truth: folder {tmp_path / 'nope'} does not exist")
    assert time.monotonic() - t0 < 25.0  # not after a 30 s run
