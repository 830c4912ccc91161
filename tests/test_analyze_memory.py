"""``pamlive analyze`` streams its input: peak memory does not grow with file length."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_analyze_memory import peak_rss_mb, write_noise  # noqa: E402

pytestmark = pytest.mark.slow


def test_peak_memory_is_flat_in_file_length(tmp_path: Path) -> None:
    config = str(REPO / "configs" / "narw.toml")
    short = peak_rss_mb(write_noise(tmp_path / "short.wav", 20, 64, 8000), tmp_path / "out",
                        config)
    long = peak_rss_mb(write_noise(tmp_path / "long.wav", 120, 64, 8000), tmp_path / "out",
                       config)
    # a 6x longer 64-channel file: the same working set (before: 1.0 GB -> 1.5 GB)
    assert long - short < 40, (short, long)
    assert long < 500, (short, long)
