"""A detection log on a real filesystem that fills up during a live run (tmpfs, as root).

The monitor must keep detecting and publishing, say what is wrong in health and on the
bus, keep the unlogged detections replayable from memory, lose nothing already logged,
count the unlogged ones in its stop summary and exit 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from test_monitor import Subscriber

from pamlive.alerts.log import DetectionLog, LoggedDetection, LogReader, LogState, read_all

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI is root)"),
]


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def simulated_monitor_config(tmp: Path, data_dir: Path, *, speed: float, interval_s: float,
                             extra: str = "") -> Path:
    """A `pamlive run` config: the simulated array with loud calls every ``interval_s``,
    the built-in detector, bus and replay on ipc sockets in ``tmp``, log in ``data_dir``."""
    cfg = tmp / "pamlive.toml"
    cfg.write_text(f"""
data_dir = "{data_dir}"
[source]
kind = "simulator"
speed = {speed}
[simulator]
call_interval_s = {interval_s}
snr_db_range = [15.0, 25.0]
seed = 7
[model]
path = "builtin:narw"
[alerts]
publish = "ipc://{tmp}/pub"
replay = "ipc://{tmp}/replay"
log = "detections.sqlite"
{extra}""", encoding="utf-8")
    return cfg


def fill(disk: Path) -> Path:
    """Write a file until the filesystem refuses another byte."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)
    with filler.open("ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0")
    return filler


def replay_all(endpoint: str) -> list[dict]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.connect(endpoint)
    try:
        sock.send(json.dumps({"id": 1}).encode())
        assert sock.poll(10_000), "no replay reply"
        reply = json.loads(sock.recv())
    finally:
        sock.close(linger=0)
        ctx.term()
    assert reply["ok"], reply
    return reply["detections"]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_full_disk_under_the_detection_log(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        cfg = simulated_monitor_config(tmp_path, disk, speed=4.0, interval_s=4.0,
                                       extra="[clips]\nenabled = false\n")
        sub = Subscriber(f"ipc://{tmp_path}/pub")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pamlive", "run", "-c", str(cfg), "--headless"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: len(sub.of("detection.")) >= 2, 60, "two detections")
            fill(disk)
            logged_before = len(sub.of("detection."))
            wait_until(lambda: len(sub.of("detection.")) >= logged_before + 3, 90,
                       "three detections on a full disk")
            wait_until(lambda: sub.of("alert.log."), 10, "a log alert")
            wait_until(lambda: any("log.disk_full" in h["flags"] for h in sub.of("health")),
                       5, "a health flag")
            served = replay_all(f"ipc://{tmp_path}/replay")
            published = sub.of("detection.")
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            messages = sub.close()
        assert proc.returncode == 0, stderr

        alert = sub.of("alert.log.disk_full")[0]
        assert alert["schema"] == "pamlive.health_alert/1"
        assert "full" in alert["reasons"][0]
        full = [h for h in sub.of("health") if "log.disk_full" in h["flags"]]
        assert full and all(h["status"] == "degraded" for h in full)
        assert full[-1]["log"]["unlogged"] >= 3 and "full" in full[-1]["log"]["error"]

        # replay served every detection published so far, logged or held in memory
        keys = [(d["run_id"], d["seq"]) for d in published]
        assert [(d["run_id"], d["seq"]) for d in served][:len(keys)] == keys
        # nothing logged before the disk filled is lost: the log holds a prefix of them
        all_published = [b for t, b in messages if t.startswith("detection.")]
        logged = read_all(disk / "detections.sqlite")
        assert logged == all_published[:len(logged)] and len(logged) >= 1
        assert len(all_published) - len(logged) >= 3
        # the log holds onsets too (the early alerts): they are counted with the detections
        alerts = [b for t, b in messages if t.startswith(("detection.", "onset."))]
        unlogged = len(alerts) - len(read_all(disk / "detections.sqlite",
                                              kinds=("detection", "onset")))
        assert f"{unlogged} alert(s) could not be logged" in stderr
        assert f"{unlogged} alert(s) (detections and onsets) were published but are not in " \
            "the detection log" in stderr


def test_held_detections_are_replayed_then_written_when_space_returns(tmp_path: Path) -> None:
    # 512 KB: room for the log's schema in its write-ahead file (~200 KB before the first
    # checkpoint) and for the held rows once the filler is gone
    with small_tmpfs(tmp_path / "disk", "512k") as disk:
        log = DetectionLog(disk / "log.db")
        log.start_run("A", "st")

        def row(seq: int) -> LoggedDetection:
            return LoggedDetection(seq, 100.0 + seq, json.dumps({"seq": seq, "pad": "x" * 500}))

        assert log.append([row(1), row(2)])
        filler = fill(disk)
        written = [log.append([row(seq)]) for seq in range(3, 40)]
        assert not all(written)  # the disk is full at some point
        state = log.state()
        assert state.problem == "log.disk_full" and state.unlogged > 0
        assert [c for c, _ in log.drain_events()] == ["log.disk_full"]
        reader = LogReader(disk / "log.db", log.backlog)
        seqs = [json.loads(b)["seq"] for b in reader.query()[0]]
        assert seqs == list(range(1, 40))  # logged rows, then the held ones, in order
        assert [json.loads(b)["seq"] for b in reader.query(after=("A", 30))[0]] == \
            list(range(31, 40))
        assert [json.loads(b)["seq"] for b in reader.query(since_epoch=137.0)[0]] == [37, 38, 39]
        page, more = reader.query(limit=5)
        assert len(page) == 5 and more

        filler.unlink()
        assert log.append([row(40)])
        assert log.state() == LogState(rows=40)
        assert [c for c, _ in log.drain_events()] == ["log.resumed"]
        reader.close()
        log.close()
        assert [d["seq"] for d in read_all(disk / "log.db")] == list(range(1, 41))
