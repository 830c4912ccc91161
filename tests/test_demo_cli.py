"""Acceptance: `pamlive demo --headless --duration 30` publishes right whale detections for
the simulated calls, tallies them against the simulator's ground truth and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from test_monitor import Subscriber, free_port


@pytest.mark.slow
def test_demo_headless_detects_simulated_calls(tmp_path) -> None:
    # 12 s hold the demo's first call (seed 2013: 6.8-7.9 s) and its bearing; longer runs
    # only repeat the same path (`pamlive demo --headless --duration 30` by hand).
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sub = Subscriber(endpoint)
    env_tmp = {"TMPDIR": str(tmp_path)}  # the demo's data folder goes there
    r = subprocess.run([sys.executable, "-m", "pamlive", "demo", "--headless", "--duration",
                        "12", "--publish", endpoint], capture_output=True, text=True,
                       timeout=120, env={**os.environ, **env_tmp})
    received = sub.close()
    assert r.returncode == 0, r.stderr
    detections = [b for t, b in received if t == "detection.right_whale"]
    assert detections, f"no right whale detection on the bus; stderr:\n{r.stderr}"
    assert all(b["schema"] == "pamlive.detection/1" and b["class"] == "right_whale"
               for b in detections)
    tally = re.search(r"demo: (\d+) of (\d+) simulated call\(s\) detected, (\d+) detection",
                      r.stderr)
    assert tally, r.stderr
    found, calls, unmatched = map(int, tally.groups())
    assert calls >= 1 and found >= 1 and found <= calls
    assert unmatched <= len(detections)
    assert {t for t, _ in received} >= {"heartbeat", "health", "detection.right_whale",
                                        "bearing.right_whale"}  # the demo's [array]
