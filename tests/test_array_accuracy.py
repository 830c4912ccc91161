"""Acceptance on the simulator: bearings of real detections (the built-in right whale
model) against the simulated truth, a small sample of ``benchmarks/bench_bearings.py``;
and the live path: alerts first, each bearing as a later message of its own."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from test_monitor import Subscriber

from pamlive.alerts.schema import validate_bearing
from pamlive.app import run_demo
from pamlive.array.trial import angle_error, bearing_error, cone_error, run_trial
from pamlive.config import ArraySettings, SimulatorConfig, load_config
from pamlive.inference.package import load_model_package
from pamlive.sources.simulator import square_geometry, towed_line_geometry


@pytest.fixture(scope="module")
def narw():
    return load_model_package("builtin:narw")


def _sim(geometry, seed: int) -> SimulatorConfig:
    return SimulatorConfig(channels=len(geometry), geometry=geometry, snr_db_range=(10.0, 25.0),
                           call_interval_s=8.0, seed=seed)


def test_square_array_bearings_within_bounds(narw) -> None:
    square = square_geometry(40.0)
    trial = run_trial(_sim(square, 41), ArraySettings(positions=square), narw, 150.0)
    errors = [e for o in trial.outcomes if (e := bearing_error(o)) is not None]
    assert len(errors) >= 10
    assert np.median(errors) <= 2.0 and np.percentile(errors, 95) <= 8.0
    assert all(o.result.relative and not o.result.relative.ambiguous for o in trial.outcomes
               if o.call)


def test_towed_line_reports_ambiguity_and_cone_within_3_degrees(narw) -> None:
    line = towed_line_geometry(2, 100.0)
    trial = run_trial(_sim(line, 42), ArraySettings(positions=line), narw, 150.0)
    located = [o for o in trial.outcomes if o.call and o.result.relative]
    assert len(located) >= 10
    assert all(o.result.relative.ambiguous and len(o.result.relative.candidates_deg) == 2
               for o in located)
    cones = [cone_error(o, 0.0) for o in located]
    assert sum(e <= 3.0 for e in cones) >= len(cones) - 1  # at most one slips


@pytest.mark.slow
def test_live_demo_publishes_bearings_after_the_alerts(tmp_path: Path, capsys) -> None:
    square = [[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [40.0, 40.0]]
    cfg_path = tmp_path / "demo.toml"
    cfg_path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[source]\nkind = "simulator"\nspeed = 6.0\n'
        f'[simulator]\nchannels = 4\ncall_interval_s = 6.0\nsnr_db_range = [15.0, 25.0]\n'
        f'seed = 5\nship_probability = 0.0\ngeometry = {square}\n'
        f'[alerts]\npublish = "ipc://{tmp_path}/pub"\nreplay = "ipc://{tmp_path}/replay"\n'
        f'[array]\npositions = {square}\nheading_source = "fixed"\nheading_deg = 0.0\n'
        f'min_channels = {{ right_whale = 2 }}\n', encoding="utf-8")
    cfg = load_config(cfg_path)
    sub = Subscriber(f"ipc://{tmp_path}/pub")
    truth_path = tmp_path / "truth.jsonl"
    # 5 s: 30 s of audio at speed 6, four calls and their bearings (each one checked)
    rc = run_demo(cfg, headless=True, duration_s=5.0, stop_event=threading.Event(),
                  truth_path=truth_path)
    messages = sub.close()
    assert rc == 0
    assert re.search(r"demo: \d+ simulated event\(s\) -> ", capsys.readouterr().err)
    truth = [json.loads(line) for line in truth_path.read_text(encoding="utf-8").splitlines()]
    calls = [t for t in truth if t["kind"] == "upcall"]
    seq = {b["start_sample"]: (i, b) for i, (t, b) in enumerate(messages)
           if t == "detection.right_whale"}
    bearings = [(i, b) for i, (t, b) in enumerate(messages) if t == "bearing.right_whale"]
    assert seq and bearings and calls
    for i, body in bearings:
        validate_bearing(body)
        assert body["start_sample"] in seq  # it names a published detection ...
        assert seq[body["start_sample"]][0] < i  # ... that went out before it
        assert body["bearing_reference"] == "true"
        call = max(calls, key=lambda c: min(c["end_sample"], body["end_sample"])
                   - max(c["start_sample"], body["start_sample"]))
        assert angle_error(body["bearing_deg"], call["bearing_deg"]) < 5.0
    health = [b for t, b in messages if t == "health"][-1]
    assert health["array"]["bearings"] == len(bearings) and health["array"]["dropped"] == 0


def _simulated_wav(tmp_path: Path, geometry, seconds: float, seed: int):
    import soundfile as sf

    from pamlive.sources.simulator import SimulatedArray

    sim = SimulatedArray(_sim(geometry, seed))
    path = tmp_path / "array.wav"
    sf.write(path, sim.read(round(seconds * sim.sample_rate)), sim.sample_rate,
             subtype="FLOAT")
    return path, sim


def test_analyze_writes_bearings_when_array_is_configured(narw, tmp_path: Path) -> None:
    from pamlive.analyze import analyze_files
    from pamlive.raven import read_selection_table

    square = square_geometry(40.0)
    path, sim = _simulated_wav(tmp_path, square, 60.0, 43)
    settings = ArraySettings(positions=square, min_channels={"right_whale": 2})
    result = analyze_files([path], narw, tmp_path / "out", progress=False, array=settings)
    rows = read_selection_table(result.files[0].table)
    assert rows and not result.failed
    for row in rows:
        start = int(row["Begin Sample"])
        call = min(sim.ground_truth, key=lambda c: abs(c.start_sample - start))
        assert angle_error(float(row["Bearing (deg)"]), call.bearing_deg) < 5.0
        assert row["Ambiguous"] == "no" and row["Bearing Reference"] == "array"
        assert len(row["Channels"].split(",")) >= 2


def test_analyze_with_too_few_channels_for_the_array_keeps_the_detections(
        narw, tmp_path: Path) -> None:
    from pamlive.analyze import analyze_files

    line = towed_line_geometry(2, 100.0)
    path, _ = _simulated_wav(tmp_path, line, 30.0, 44)
    square = ArraySettings(positions=square_geometry(40.0))
    result = analyze_files([path], narw, tmp_path / "out", progress=False, array=square)
    assert "positions lists 4 elements but the input has 2" in (result.files[0].error or "")
    assert result.files[0].detections and result.files[0].table is not None
