"""Smoke test of the accelerated soak (benchmarks/bench_soak.py): a quarter hour of stream
with every fault of its schedule once (disk full, subscriber/sink/monitor SIGKILLed and
restarted, source stall, clock jumps) passes: nothing lost outside the fault windows,
live == analyze there, every detection delivered once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the full-disk fault mounts a tmpfs (root)"),
]


def test_a_quarter_hour_soak_passes(shared_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PAMLIVE_SHARED": str(shared_dir)}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_soak.py"), "--hours", "0.25",
         "--speed", "60"], env=env, capture_output=True, text=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert "RESULT: PASS" in out
    for fault in ("disk_full", "subscriber_kill", "sink_kill", "monitor_kill", "source_stall",
                  "clock_forward", "clock_back"):
        assert f"  {fault}" in out
    assert "identical: True" in out
    assert "missing 0, duplicated 0" in out
