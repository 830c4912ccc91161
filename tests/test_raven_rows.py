"""Raven tables with one row per channel (Raven's multichannel selections) or per detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_in_noise
from test_analyze import pamlive

from pamlive.raven import read_selection_table


@pytest.fixture()
def recording(tmp_path: Path) -> Path:
    """Four channels: a tone on channels 2 and 4 (1-based) at 10.2 s, on 3 at 20.2 s."""
    x = tone_in_noise(8000, 30, [], channels=4)
    t = np.arange(x.shape[0]) / 8000
    for start, chans in ((10.2, (1, 3)), (20.2, (2,))):
        on = (t >= start) & (t < start + 1.6)
        for c in chans:
            x[on, c] += 0.2 * np.sin(2 * np.pi * 180 * t[on])
    sf.write(tmp_path / "m.flac", x, 8000)
    return tmp_path / "m.flac"


def _config(tmp_path: Path, package: Path, extra: str = "") -> Path:
    p = tmp_path / "c.toml"
    p.write_text(f'[model]\npath = "{package}"\n{extra}')
    return p


def _rows(table: Path) -> list[tuple[str, str, str]]:
    return [(r["Selection"], r["Channel"], r["Channels"]) for r in read_selection_table(table)]


@pytest.mark.slow
def test_one_row_per_channel_by_flag_or_config(tmp_path: Path, tonal_package: Path,
                                               recording: Path) -> None:
    cfg = _config(tmp_path, tonal_package)
    r = pamlive("analyze", str(recording), "-c", str(cfg), "-o", str(tmp_path / "merged"))
    assert r.returncode == 0, r.stderr
    merged = _rows(tmp_path / "merged" / "m.selections.txt")
    assert [(s, ch) for s, _, ch in merged] == [("1", "2,4"), ("2", "3")]

    r = pamlive("analyze", str(recording), "-c", str(cfg), "-o", str(tmp_path / "per"),
                "--raven-rows", "channel")
    assert r.returncode == 0, r.stderr
    per = _rows(tmp_path / "per" / "m.selections.txt")
    assert per == [("1", "2", "2,4"), ("1", "4", "2,4"), ("2", "3", "3")]

    cfg = _config(tmp_path, tonal_package, '[analyze]\nraven_rows = "channel"\n')
    r = pamlive("analyze", str(recording), "-c", str(cfg), "-o", str(tmp_path / "cfg"))
    assert r.returncode == 0, r.stderr
    assert _rows(tmp_path / "cfg" / "m.selections.txt") == per
    # the same times on every row of a selection
    rows = read_selection_table(tmp_path / "cfg" / "m.selections.txt")
    assert rows[0]["Begin Time (s)"] == rows[1]["Begin Time (s)"]


def test_bad_raven_rows_is_named(tmp_path: Path, tonal_package: Path) -> None:
    cfg = _config(tmp_path, tonal_package, '[analyze]\nraven_rows = "row"\n')
    r = pamlive("analyze", "x.wav", "-c", str(cfg), "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "[analyze] raven_rows must be detection or channel, got 'row'" in r.stderr
