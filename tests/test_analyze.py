"""``pamlive analyze`` as a user runs it: a real process, real files, a real ONNX model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_in_noise

from pamlive.raven import COLUMNS, read_selection_table


def pamlive(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pamlive", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture()
def config(tmp_path: Path, tonal_package: Path) -> Path:
    p = tmp_path / "tonal.toml"
    p.write_text(f'[model]\npath = "{tonal_package}"\nhop_s = 1.0\nmax_merge = 10\n')
    return p


@pytest.mark.parametrize("rate", [2000, 8000, 48000, 96000])
@pytest.mark.slow
def test_tones_are_found_at_their_times_at_any_rate(tmp_path: Path, config: Path,
                                                     rate: int) -> None:
    # tones well inside windows [20, 22) and [40, 42) s
    x = tone_in_noise(rate, 60, [(20.2, 21.8, 150.0), (40.2, 41.8, 250.0)])
    sf.write(tmp_path / "a.wav", x, rate, subtype="FLOAT")
    r = pamlive("analyze", str(tmp_path / "a.wav"), "-c", str(config), "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    rows = read_selection_table(tmp_path / "o" / "a.selections.txt")
    assert list(rows[0])[: len(COLUMNS)] == COLUMNS
    spans = [(float(r["Begin Time (s)"]), float(r["End Time (s)"])) for r in rows]
    assert len(spans) == 2
    for (begin, end), tone in zip(spans, (20.2, 40.2), strict=True):
        assert begin <= tone and end >= tone + 1.6 and end - begin <= 4.0
    assert {r["Class"] for r in rows} == {"right_whale"}
    assert all(r["View"] == "Spectrogram 1" for r in rows)


def test_every_channel_is_analysed(tmp_path: Path, config: Path) -> None:
    x = tone_in_noise(8000, 30, [], channels=3)
    t = np.arange(x.shape[0]) / 8000
    on = (t >= 10.2) & (t < 11.8)
    x[on, 2] += 0.2 * np.sin(2 * np.pi * 180 * t[on])
    sf.write(tmp_path / "m.flac", x, 8000)
    r = pamlive("analyze", str(tmp_path), "-c", str(config), "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    rows = read_selection_table(tmp_path / "o" / "m.selections.txt")
    assert [(row["Channel"], row["Channels"]) for row in rows] == [("3", "3")]


def test_bad_inputs_are_reported_and_good_ones_still_analysed(tmp_path: Path,
                                                              config: Path) -> None:
    sf.write(tmp_path / "good.wav", tone_in_noise(8000, 20, [(8.2, 9.8, 150.0)]), 8000)
    sf.write(tmp_path / "slow.wav", np.zeros(4000, np.float32), 1000)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    nan = tone_in_noise(8000, 20, [(4.2, 5.8, 150.0)])
    nan[8000 * 15] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    r = pamlive("analyze", str(tmp_path / "good.wav"), str(tmp_path / "slow.wav"),
                str(tmp_path / "junk.wav"), str(tmp_path / "nan.wav"), "-c", str(config),
                "-o", str(tmp_path / "o"))
    assert r.returncode == 1
    assert "3 of 4 input(s) failed" in r.stderr
    assert "slow.wav: sample rate 1000 Hz is below the 2000 Hz minimum" in r.stderr
    assert "junk.wav: not a readable audio file" in r.stderr
    assert "nan.wav: NaN or Inf sample at 15.000 s" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(read_selection_table(tmp_path / "o" / "good.selections.txt")) == 1
    # a failed input leaves no table, not even one found before its bad sample
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["good.selections.txt"]
    assert "nan.wav:" not in r.stdout and "good.wav: 1 detection(s)" in r.stdout


def test_missing_model_is_one_line_before_any_work(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\npath = "/nonexistent/model"\n')
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 8000)
    r = pamlive("analyze", str(tmp_path / "a.wav"), "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip() == "pamlive: error: /nonexistent/model: model package not found"
    assert not (tmp_path / "o").exists()


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nhop_s = 0\n")
    r = pamlive("analyze", str(tmp_path), "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().endswith("[model] hop_s must be positive, got 0.0")
