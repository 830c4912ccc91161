"""How a monitor ends, as its subscribers and its next start see it (issue 25, 2 and 3):
every stop names its reason in the stop line and the goodbye, and a run that died
(kill -9) is found by the next start, which closes the onsets it left open."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_field_full_disk import simulated_monitor_config
from test_monitor import Subscriber

from pamlive.alerts.client import AlertClient
from pamlive.alerts.log import read_all

pytestmark = pytest.mark.slow


def _monitor(cfg: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pamlive", "run", "-c", str(cfg),
                             "--headless", *extra], stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, sub: Subscriber) -> str:
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    sub.close()
    return err


def _goodbye(sub: Subscriber) -> tuple[dict, dict]:
    """The last health and the last heartbeat of the run."""
    return sub.of("health")[-1], sub.of("heartbeat")[-1]


def test_sigterm_is_named_in_the_stop_line_and_the_goodbye(tmp_path: Path) -> None:
    cfg = simulated_monitor_config(tmp_path, tmp_path / "data", speed=2.0, interval_s=3.0)
    sub = Subscriber(f"ipc://{tmp_path}/pub")
    proc = _monitor(cfg)
    sub.wait_for("health", timeout=60)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, sub)
    assert proc.returncode == 0, err
    assert "stopped: SIGTERM [sigterm];" in err
    health, heartbeat = _goodbye(sub)
    assert health["final"] is True and health["stop_reason"] == "sigterm"
    assert heartbeat["final"] is True and heartbeat["stop_reason"] == "sigterm"


def test_end_of_the_recording_is_named(tmp_path: Path) -> None:
    wav = tmp_path / "short.wav"
    sf.write(wav, np.random.default_rng(0).normal(0, 0.01, 8000).astype("float32"), 2000)
    cfg = simulated_monitor_config(tmp_path, tmp_path / "data", speed=4.0, interval_s=3.0)
    sub = Subscriber(f"ipc://{tmp_path}/pub")
    proc = _monitor(cfg, "--play", str(wav))
    err = _finish(proc, sub)
    assert proc.returncode == 0, err
    assert "stopped: end of input [end_of_input];" in err
    health, heartbeat = _goodbye(sub)
    assert health["stop_reason"] == heartbeat["stop_reason"] == "end_of_input"


def test_a_killed_runs_open_onset_is_closed_by_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = simulated_monitor_config(tmp_path, data, speed=1.0, interval_s=4.0)
    db = data / "detections.sqlite"
    sub = Subscriber(f"ipc://{tmp_path}/pub")
    proc = _monitor(cfg)
    try:
        onset = sub.wait_for("onset.right_whale", timeout=60)
        proc.kill()  # kill -9 while the call is still open: its detection never comes
        proc.wait()
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
    logged = read_all(db, kinds=("detection", "onset"))
    if any(b.get("id") == onset["id"] for b in logged if "onset" not in b["schema"]):
        pytest.skip("the detection closed before the kill landed")

    client = AlertClient(f"ipc://{tmp_path}/pub", replay_endpoint=f"ipc://{tmp_path}/replay")
    proc = _monitor(cfg)  # the restart
    try:
        closing, health = _closing_and_health(client, onset["id"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"the previous run {onset['run_id']} ended uncleanly" in err
    # the new run closes the dead run's onset with a detection marked as such
    assert closing["id"] == onset["id"] and closing["incomplete"] is True
    assert closing["onset_run_id"] == onset["run_id"] != closing["run_id"]
    assert closing["start_utc"] == onset["start_utc"]
    assert health["previous_run"] == {"run_id": onset["run_id"], "stop_reason": "unclean",
                                      "onsets_closed": 1}
    # replay (the log) has it ended too, and the next start finds nothing more to close
    assert [b["incomplete"] for b in read_all(db) if b["id"] == onset["id"]] == [True]
    assert "ended uncleanly" not in _restart_and_stop(cfg, tmp_path)


def _closing_and_health(client: AlertClient, onset_id: str) -> tuple[dict, dict]:
    """The detection closing ``onset_id`` (live or healed) and a health of its run."""
    closing = health = None
    deadline = time.monotonic() + 60
    while closing is None or health is None:
        assert time.monotonic() < deadline, "no closing detection and health"
        for event in client.poll(100):
            if event.alert == "detection" and event.body["id"] == onset_id:
                closing = event.body
            elif event.topic == "health" and closing is not None:
                health = event.body
    return closing, health


def _restart_and_stop(cfg: Path, tmp_path: Path) -> str:
    sub = Subscriber(f"ipc://{tmp_path}/pub")
    proc = _monitor(cfg)
    sub.wait_for("health", timeout=60)
    proc.send_signal(signal.SIGTERM)
    return _finish(proc, sub)
