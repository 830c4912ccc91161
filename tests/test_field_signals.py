"""Signals a field monitor meets: SIGHUP when the SSH session that started it drops."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_field_full_disk import simulated_monitor_config
from test_monitor import Subscriber

from pamlive.alerts.log import read_all

pytestmark = pytest.mark.slow


def test_sighup_is_a_clean_stop_with_pending_clip_flushed(tmp_path: Path) -> None:
    cfg = simulated_monitor_config(tmp_path, tmp_path / "data", speed=2.0, interval_s=3.0,
                                   extra="[clips]\npost_s = 30.0\n")
    sub = Subscriber(f"ipc://{tmp_path}/pub")
    proc = subprocess.Popen([sys.executable, "-m", "pamlive", "run", "-c", str(cfg),
                             "--headless"], stderr=subprocess.PIPE, text=True)
    try:
        first = sub.wait_for("detection.right_whale", timeout=60)
        proc.send_signal(signal.SIGHUP)  # the clip's 30 s post-roll has not arrived yet
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    sub.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped: SIGHUP (terminal or SSH session closed)" in err
    assert sub.of("health")[-1]["stop_reason"] == "sighup"
    assert Path(first["clip"]).is_file()  # the pending clip was flushed, short of post-roll
    logged = [d["seq"] for d in read_all(tmp_path / "data" / "detections.sqlite")]
    assert first["seq"] in logged
    assert sub.of("health")[-1]["status"] in ("ok", "degraded")
