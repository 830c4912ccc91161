"""Field operations inside a real `pamlive run` (replayed recording, real sockets).

One run of the tutorial recording through the monitor, with every field feature on:
sd_notify to a real unix socket, NMEA 0183 broadcasts on a real UDP socket, evidence
clips, and the raw archive. Checked afterwards:

* every detection on the bus carries the position interpolated at its start time and
  a ``clip`` whose audio is the recording's samples around the call, by sample index;
* the archive holds the whole recording, bit-exact at 24 bits, named by UTC start time;
* systemd heard READY=1, WATCHDOG=1 pings, STATUS= lines and STOPPING=1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from jack_helpers import live_model
from test_monitor import TUTORIAL, Subscriber, free_port, write_config

from pamlive.alerts.schema import parse_utc

pytestmark = pytest.mark.slow

FILE_START = datetime(2001, 3, 27, 9, 18, 0, tzinfo=UTC)  # from the file name
PRE_S, POST_S = 2.0, 1.5
LAT0, LON0, DRIFT = 41.0, -66.0, 1e-4  # the vessel moves DRIFT degrees per second


def nmea(body: str) -> bytes:
    checksum = reduce(lambda a, c: a ^ ord(c), body, 0)
    return f"${body}*{checksum:02X}\r\n".encode("ascii")


def rmc_at(t: datetime) -> bytes:
    """An RMC fix at ``t`` on a track lat = LAT0 + DRIFT*s, lon = LON0 - DRIFT*s."""
    s = (t - FILE_START).total_seconds()
    lat, lon = LAT0 + DRIFT * s, abs(LON0 - DRIFT * s)
    lat_dm = f"{int(lat):02d}{(lat - int(lat)) * 60:09.6f}"
    lon_dm = f"{int(lon):03d}{(lon - int(lon)) * 60:09.6f}"
    return nmea(f"GPRMC,{t:%H%M%S}.00,A,{lat_dm},N,{lon_dm},W,5.0,270.0,{t:%d%m%y},,,A")


class NmeaBroadcaster:
    """Sends the whole track (one fix a second around the recording) again and again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        fixes = [rmc_at(FILE_START + timedelta(seconds=s)) for s in range(-30, 200)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            while not self.stop.is_set():
                for k in range(0, len(fixes), 10):  # ten sentences per datagram
                    tx.sendto(b"".join(fixes[k:k + 10]), ("127.0.0.1", self.port))
                self.stop.wait(0.05)


class NotifyListener:
    """Plays systemd's side of sd_notify: reads datagrams as they come (the kernel queues
    only a few on a unix datagram socket; a sender that finds it full loses them)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.notes: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.notes.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> list[str]:
        self.stop.set()
        self.thread.join()
        self.sock.close()
        return self.notes


def test_field_features_in_a_live_run(shared_dir: Path, tmp_path: Path) -> None:
    path = shared_dir / TUTORIAL
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    model = live_model(tmp_path / "model", audio, rate)
    port = free_port(socket.SOCK_DGRAM)
    cfg = write_config(tmp_path, model, f'kind = "replay"\nfiles = ["{path}"]\nspeed = 20.0',
                       extra=f"""
[clips]
pre_s = {PRE_S}
post_s = {POST_S}
[archive]
enabled = true
segment_minutes = 1.0
min_free_percent = 0.0
[position]
source = "udp"
udp_host = "127.0.0.1"
udp_port = {port}
[model.thresholds]
right_whale = 0.5   # the default (0.998) detects nothing on this recording of another
                    # site and year: the test needs its calls detected
""")
    notify = NotifyListener(tmp_path / "notify.sock")
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    nmea_tx = NmeaBroadcaster(port)
    sub = Subscriber(f"ipc://{tmp_path}/pub")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pamlive", "run", "-c", str(cfg), "--headless"],
            env={**os.environ, **env}, capture_output=True, text=True,
            timeout=120)
    finally:
        nmea_tx.stop.set()
        sub.close()
        notes = notify.close()
    assert run.returncode == 0, run.stderr

    # systemd's view
    kinds = [n.split("\n")[0].split("=")[0] for n in notes]
    assert "READY" in kinds and "WATCHDOG" in kinds
    assert kinds.index("READY") < kinds.index("WATCHDOG")  # pings only once audio flows
    assert any(n.startswith("STATUS=") or "\nSTATUS=" in n for n in notes)
    assert kinds[-1] == "STOPPING"

    detections = sub.of("detection.")
    assert detections, "the recording's calls must be detected for this test to mean much"
    data = tmp_path / "data"
    for d in detections:
        # position: the track is linear, so interpolation is exact (NMEA keeps 1e-7 deg)
        s = (parse_utc(d["start_utc"]) - FILE_START).total_seconds()
        pos = d["position"]
        assert pos["lat"] == pytest.approx(LAT0 + DRIFT * s, abs=2e-6)
        assert pos["lon"] == pytest.approx(LON0 - DRIFT * s, abs=2e-6)
        assert 0.0 <= pos["fix_age_s"] <= 0.5 and pos["source"] == "nmea-udp"
        # the clip: the recording's own samples around the call, cut by sample index
        clip_path = Path(d["clip"])
        assert clip_path.is_file() and clip_path.with_suffix(".png").is_file()
        clip, clip_rate = sf.read(clip_path, dtype="float32", always_2d=True)
        first = max(0, d["start_sample"] - round(PRE_S * rate))
        last = min(audio.shape[0], d["end_sample"] + round(POST_S * rate))
        assert clip_rate == rate and clip.shape[0] == last - first
        np.testing.assert_allclose(clip, audio[first:last], atol=2**-22)
        assert data in clip_path.parents

    archive = sorted((data / "archive").glob("raw_*.flac"))
    assert archive[0].name == "raw_20010327T091800_000Z.flac"
    assert [a.name[4:19] for a in archive] == [f"20010327T09{m:02d}00" for m in range(18, 21)]
    recorded = np.concatenate([sf.read(a, dtype="float32", always_2d=True)[0] for a in archive])
    np.testing.assert_allclose(recorded, audio, atol=2**-22)
