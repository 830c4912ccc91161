"""Accelerated soak of the live path: a day of audio through ``pamlive run`` with faults.

What. ``--hours`` (default 24) of 4-channel 2 kHz audio is played through ``pamlive run``
(``[source] kind = "replay"``: paced playback, ring, windows, ONNX Runtime, merge rule,
clips, the durable SQLite log and the ZeroMQ bus) at ``--speed`` times real time, while
faults arrive on a schedule (one cycle of seven every ``min(4 h, --hours)`` of stream):

* the data disk fills (a tmpfs as ``data_dir``, 256 MiB + 100 MiB per stream hour for the
  clips; filled to ENOSPC as in ``tests/test_field_full_disk.py``; needs root) and is
  freed 10 stream minutes later (less in a run shorter than 4 h: faults do not overlap);
* a subscriber (``bench_alert_soak.py --subscriber``: an ``AlertClient`` that resumes
  from its last line) and a sink (``examples/webhook_bridge.py``, posting to a receiver in
  this script, resuming from its ``--state``) are each SIGKILLed and restarted 1 s later;
* the monitor is SIGKILLed; a supervisor loop here restarts it 1 s later
  (``Restart=on-failure`` of ``systemd/pamlive.service``, ``RestartSec`` scaled down) on
  the audio that "arrives" by then: the stream is a playlist of 1-minute files named by
  their UTC start, and a restart plays from the next minute on, so the time the monitor
  is down (and starting) is lost, counted, like a hydrophone nobody listened to;
* the source stalls for 4 s of wall time (no blocks; then the paced source catches up);
* the monitor's clock jumps forward one day, and back again 10 minutes later.

The stall and the clock jump are injected into the monitor process by a shim
(``--monitor``: it runs ``pamlive.cli.main(["run", ...])`` after wrapping the opened
source's block iterator and ``time.time``; changing the host's clock would disturb every
other process on the machine). Everything else is the unmodified ``pamlive run``.

The audio: the four DCLDE 2013 recordings of ``../shared/data/narw-dclde2013`` (the three
labelled right whale files of 2009-03-28 and one of 2009-03-29, 15 min each, one per
channel), with the simulator's synthetic upcalls (``SimulatedArray``, plane-wave delays
across a 30 m square, 5-20 dB SNR against noise at the recordings' level) mixed in: only
the calls (the simulator's stream minus its own noise); looped every 15 minutes.

Why. Issue 25 item 9: a day of audio through the live path with faults arriving, shown
to lose nothing it need not lose, to deliver every alert once, and not to grow.

How to run (root, for the tmpfs; ``--hours 1`` is a quick check of ~2 min)::

    python benchmarks/bench_soak.py [--hours 24] [--speed 60] [--keep]

At 60x a day takes 24 min of wall time plus the restarts and the reference.

What it prints:

* the stream: hours played, wall time, achieved speed, monitor runs (restarts);
* each fault with its stream time, and the fault windows (stream time) where samples
  may be lost: from the killed monitor's last health to the restart, and the stall;
* samples lost: between runs (kill -9 and restart), overwritten in the ring (stall
  catch-up), dropped windows/scores/messages; each attributed to a fault window, and
  the number outside any window (must be 0);
* detections: live (the durable log) vs the reference (``StreamDetector``, the code of
  ``pamlive analyze``, over the same looped audio) outside the fault windows;
* delivery: each detection in the log received by the subscriber once (replayed across
  its restarts and the monitor's) and posted by the webhook sink (at-least-once by
  design: re-posts after a kill are counted, the receiver de-duplicates by run_id, seq);
* RSS and open files of the monitor at each simulated hour (flat within 5 % from hour
  2 on, restarted runs included), the detection log's and clips' sizes;
* health flags (and ``alert.*`` messages) as they rose and fell, in stream time;
* RESULT: PASS or FAIL with the reasons.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import zmq
from bench_alert_soak import _read_lines, _resume_arg  # type: ignore[import-not-found]
from bench_live_memory import status_mib  # type: ignore[import-not-found]
from bench_replay_hour import REPO, shared_dir  # type: ignore[import-not-found]

RATE = 2000
CHANNELS = 4
PIECE_S = 60  # playlist granularity: a restart starts on the next whole minute
TILE_S = 900  # the recordings' length: the stream loops every 15 minutes
HOP_S = 0.5  # configs/narw.toml
MAX_MERGE = 10
MARGIN_S = 30.0  # around a fault window: a detection's windows and merge reach this far
RESTART_S = 1.0  # systemd's RestartSec, scaled down
STALL_S = 4.0  # wall seconds without blocks
DISK_MIB = (256, 100)  # the data disk: 256 MiB + 100 MiB per stream hour (clips ~80/h)
BASE_UTC = datetime(2026, 1, 1, tzinfo=UTC)
RECORDINGS = ("data/narw-dclde2013/train/narw/NOPP6_EST_20090328_000000.wav",
              "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_001500.wav",
              "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_003000.wav",
              "data/narw-dclde2013/unlabelled/NOPP6_EST_20090329_121500.wav")
FAULTS = ("disk_full", "subscriber_kill", "sink_kill", "monitor_kill", "source_stall",
          "clock_forward", "clock_back")


# -- the audio -------------------------------------------------------------------------------

def make_tile(seed: int) -> tuple[np.ndarray, int]:
    """TILE_S s x 4 ch at 2 kHz: a real recording per channel plus synthetic upcalls."""
    from pamlive.config import SimulatorConfig
    from pamlive.sources.simulator import SimulatedArray

    n = TILE_S * RATE
    real = []
    for rel in RECORDINGS:
        audio, rate = sf.read(shared_dir() / rel, dtype="float32", always_2d=True)
        if rate != RATE or audio.shape[0] < n:
            raise SystemExit(f"{rel}: expected >= {TILE_S} s at {RATE} Hz")
        real.append(audio[:n, 0])
    tile = np.stack(real, axis=1)
    level = float(20 * np.log10(np.sqrt(np.mean(tile.astype(np.float64) ** 2))))

    def array(interval_s: float) -> SimulatedArray:
        cfg = SimulatorConfig(channels=CHANNELS, samplerate=RATE, call_interval_s=interval_s,
                              snr_db_range=(5.0, 20.0), ship_probability=0.0,
                              noise_level_dbfs=min(0.0, level), seed=seed)
        return SimulatedArray(cfg, seed=seed)

    def read(sim: SimulatedArray) -> np.ndarray:
        # a minute at a time, as a stream reads it (the same samples whatever the block size)
        return np.concatenate([sim.read(PIECE_S * RATE) for _ in range(TILE_S // PIECE_S)])

    with_calls, noise_only = array(45.0), array(1e12)
    calls = read(with_calls) - read(noise_only)  # the same noise: only the calls remain
    truth = [c for c in with_calls.ground_truth if c.end_sample <= n]
    return np.clip(tile + calls, -1.0, 1.0).astype(np.float32), len(truth)


def write_stream(tile: np.ndarray, folder: Path, hours: float) -> list[Path]:
    """The tile cut into 1-minute files, and one link per minute of the stream named by
    its UTC start (the name is the playback's clock: a restart keeps absolute times)."""
    pieces = folder / "pieces"
    pieces.mkdir(parents=True)
    step = PIECE_S * RATE
    per_tile = TILE_S // PIECE_S
    for k in range(per_tile):
        sf.write(pieces / f"piece{k:02d}.wav", tile[k * step:(k + 1) * step], RATE,
                 subtype="FLOAT")
    links = []
    for m in range(math.ceil(hours * 3600 / PIECE_S)):
        t = BASE_UTC + timedelta(seconds=m * PIECE_S)
        link = folder / f"SOAK_{t:%Y%m%d_%H%M%S}.wav"
        link.symlink_to(pieces / f"piece{m % per_tile:02d}.wav")
        links.append(link)
    return links


def reference(tile: np.ndarray, hours: float) -> list[tuple[float, float, str]]:
    """Detections of ``pamlive analyze``'s StreamDetector on the looped stream, in stream
    seconds: the first tiles are scored; from the second one on the loop repeats itself
    (checked on the third, when the run is that long)."""
    from pamlive.inference.classifier import Classifier
    from pamlive.inference.package import load_model_package
    from pamlive.pipeline import StreamDetector

    package = load_model_package("builtin:narw")
    det = StreamDetector(package, Classifier(package), RATE, CHANNELS, hop_s=HOP_S,
                         max_merge=MAX_MERGE)
    tiles = min(3, math.ceil(hours * 3600 / TILE_S))
    found = []
    for _ in range(tiles):
        found += det.push(tile)
    found += det.finish()
    got = [(d.start_sample / RATE, d.end_sample / RATE, d.class_name) for d in found]
    if tiles < 3:
        return got
    one = [(s - TILE_S, e - TILE_S, c) for s, e, c in got if TILE_S <= s < 2 * TILE_S]
    two = [(s - 2 * TILE_S, e - 2 * TILE_S, c) for s, e, c in got
           if s >= 2 * TILE_S and e < 3 * TILE_S - MARGIN_S]
    if two != [d for d in one if d[1] < TILE_S - MARGIN_S]:
        raise SystemExit("reference: the loop does not repeat itself (tile 2 != tile 3)")
    out = [d for d in got if d[0] < TILE_S]
    for k in range(1, math.ceil(hours * 3600 / TILE_S)):
        out += [(s + k * TILE_S, e + k * TILE_S, c) for s, e, c in one]
    return out


# -- the monitor process (shim) ----------------------------------------------------------------

def monitor_main(config: Path, faults: Path) -> int:
    """``pamlive run -c CONFIG --headless`` with two injectable faults: while
    ``faults/stall`` exists the source delivers no blocks; ``faults/clock_offset_s`` is
    added to ``time.time()``."""
    import pamlive.app as app
    from pamlive.cli import main

    real_time = time.time
    offset = [0.0]

    def watch_clock() -> None:
        while True:
            try:
                offset[0] = float((faults / "clock_offset_s").read_text())
            except (OSError, ValueError):
                offset[0] = 0.0
            time.sleep(0.05)

    threading.Thread(target=watch_clock, daemon=True).start()
    time.time = lambda: real_time() + offset[0]
    opened = app.open_source

    def open_source(cfg: Any) -> Any:
        source = opened(cfg)
        blocks = source._blocks
        stall = faults / "stall"

        def stalled() -> Iterator[np.ndarray]:
            for i, block in enumerate(blocks()):
                while i % 8 == 0 and stall.exists():
                    time.sleep(0.02)
                yield block

        source._blocks = stalled
        return source

    app.open_source = open_source  # type: ignore[assignment]
    return main(["run", "-c", str(config), "--headless"])


def write_config(work: Path, disk: Path, files: list[Path], speed: float, run: int) -> Path:
    cfg = work / f"run{run:02d}.toml"
    listed = ", ".join(f'"{f}"' for f in files)
    cfg.write_text(f"""station = "soak"
data_dir = "{disk}"
[source]
kind = "replay"
files = [{listed}]
speed = {speed}
[model]
path = "builtin:narw"
hop_s = {HOP_S}
max_merge = {MAX_MERGE}
[buffers]
ring_seconds = 600.0
[alerts]
publish = "ipc://{work}/pub"
replay = "ipc://{work}/replay"
log = "detections.sqlite"
""", encoding="utf-8")
    return cfg


# -- observers -------------------------------------------------------------------------------

@dataclass
class Run:
    index: int
    start_s: float  # stream second of its first sample
    proc: subprocess.Popen
    run_id: str | None = None
    last_stream_s: float | None = None  # from its newest health (absolute)
    last_health_at: float | None = None  # monotonic
    drops: dict[str, int] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    rc: int | None = None
    killed: bool = False  # by the schedule (any other exit is a crash)


class Bus:
    """A raw subscriber: health per run (stream position, flags, drops), alert.* topics."""

    def __init__(self, endpoint: str, runs: list[Run]) -> None:
        self.runs = runs
        self.timeline: list[tuple[float, int, str]] = []  # (stream s, run, what)
        self.losses: list[tuple[float, str, int]] = []  # (stream s, counter, growth)
        self.detections: dict[tuple[str, int], dict] = {}  # as published, by (run_id, seq)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.rcvhwm = 0
        self.sock.subscribe(b"")
        self.sock.connect(endpoint)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def run_of(self, run_id: str) -> Run | None:
        for run in reversed(self.runs):
            if run.run_id == run_id:
                return run
        current = self.runs[-1] if self.runs else None
        if current is not None and current.run_id is None:
            current.run_id = run_id
            return current
        return None

    def loop(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            topic, body = self.sock.recv_multipart()[:2]
            msg = json.loads(body)
            with self.lock:
                run = self.run_of(msg.get("run_id", ""))
                if run is None:
                    continue
                if topic == b"health" and "stream_time_s" in msg:
                    self.health(run, msg)
                elif topic.startswith(b"alert."):
                    where = run.last_stream_s if run.last_stream_s is not None else run.start_s
                    self.timeline.append((where, run.index, f"alert {topic.decode()}"))
                elif topic.startswith(b"detection."):
                    self.detections[msg["run_id"], msg["seq"]] = msg

    def health(self, run: Run, msg: dict) -> None:
        now = run.start_s + msg["stream_time_s"]
        run.last_stream_s, run.last_health_at = now, time.monotonic()
        flags = set(msg.get("flags", []))
        for f in sorted(flags - run.flags):
            self.timeline.append((now, run.index, f"rose {f}"))
        for f in sorted(run.flags - flags):
            self.timeline.append((now, run.index, f"fell {f}"))
        run.flags = flags
        for key, count in msg["drops"].items():  # ring_samples, window_queue ...
            if count > run.drops.get(key, 0):
                self.losses.append((now, key, count - run.drops.get(key, 0)))
        run.drops = dict(msg["drops"])

    def close(self) -> None:
        time.sleep(0.5)
        self.stop.set()
        self.thread.join()
        self.sock.close(linger=0)
        self.ctx.term()


class Receiver:
    """The webhook's far end: keeps every detection posted, duplicates included."""

    def __init__(self) -> None:
        posted: list[dict] = []
        self.posted = posted

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                posted.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def detections(self) -> list[tuple[str, int]]:
        return [(b["run_id"], b["seq"]) for b in list(self.posted)
                if str(b.get("schema", "")).startswith("pamlive.detection/")]


class Restartable:
    """A helper process started again after each kill, with arguments made at start."""

    def __init__(self, name: str, argv: Callable[[], list[str]], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT,
                                         cwd=REPO)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1


# -- the soak --------------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(where: Path, mib: int) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem refuses another byte."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * (1 << 20))
    with filler.open("ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0")
    return filler


def schedule_step(hours: float) -> float:
    """Stream seconds between two faults of a cycle (one cycle: min(4 h, the run))."""
    return min(4 * 3600.0, hours * 3600) / (len(FAULTS) + 0.5)


def schedule(hours: float) -> list[tuple[float, str]]:
    """(stream s, fault): the seven faults spread over each cycle, cycles over the run;
    they do not overlap (each ends before the next begins)."""
    total = hours * 3600
    cycle = min(4 * 3600.0, total)
    step = schedule_step(hours)
    out = []
    for c in range(math.ceil(total / cycle)):
        for i, name in enumerate(FAULTS):
            at = c * cycle + (i + 0.5) * step
            if at < total - step / 2:  # a partial last cycle: the faults that fit
                out.append((at, name))
    return out


def hms(s: float) -> str:
    s = max(0.0, s)
    return f"{int(s // 3600):02d}:{int(s % 3600 // 60):02d}:{int(s % 60):02d}"


def soak(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise SystemExit("bench_soak: the full-disk fault mounts a tmpfs: run as root")
    total_s = args.hours * 3600
    work = Path(tempfile.mkdtemp(prefix="pamlive-soak-"))
    faults = work / "faults"
    faults.mkdir()
    tile, calls_per_tile = make_tile(args.seed)
    links = write_stream(tile, work / "stream", args.hours)
    t_ref = time.monotonic()
    ref = reference(tile, args.hours)
    ref_wall = time.monotonic() - t_ref

    disk_mib = DISK_MIB[0] + math.ceil(DISK_MIB[1] * args.hours)
    with tmpfs(work / "disk", disk_mib) as disk:
        runs: list[Run] = []
        bus = Bus(f"ipc://{work}/pub", runs)
        receiver = Receiver()
        subscribed = work / "subscriber.txt"
        state = work / "bridge.state"
        py = sys.executable
        sub = Restartable("subscriber", lambda: [
            py, str(REPO / "benchmarks/bench_alert_soak.py"), "--subscriber",
            "--publish", f"ipc://{work}/pub", "--replay", f"ipc://{work}/replay",
            "--out", str(subscribed), *_resume_arg(_read_lines(subscribed))],
            work / "subscriber.log")
        sink = Restartable("sink", lambda: [
            py, str(REPO / "examples/webhook_bridge.py"), receiver.url,
            "--publish", f"ipc://{work}/pub", "--replay", f"ipc://{work}/replay",
            "--state", str(state), "--lost-after-s", "3"], work / "sink.log")
        sub.start()
        sink.start()
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        def spawn(start_s: float) -> None:
            first = int(start_s // PIECE_S)
            cfg = write_config(work, disk, links[first:], args.speed, len(runs))
            with open(work / f"run{len(runs):02d}.log", "wb") as out:
                proc = subprocess.Popen(
                    [py, __file__, "--monitor", str(cfg), "--faults", str(faults)],
                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
            with bus.lock:
                runs.append(Run(len(runs), first * PIECE_S, proc))

        def position() -> float:
            """The stream second the monitor has reached (its newest health)."""
            with bus.lock:
                for run in reversed(runs):
                    if run.last_stream_s is not None:
                        return run.last_stream_s
            return 0.0

        events: list[tuple[float, str]] = []  # (stream s, what happened)
        windows: list[tuple[float, float, str]] = []  # where samples may be lost
        hourly: list[tuple[int, int, float, int, int, int]] = []
        trace: list[tuple[float, int, float]] = []  # (stream s, run, RSS MiB) every 10 min
        plan = schedule(args.hours)
        # (wall due, stream due, action, what): the end of a fault, due at both
        pending: list[tuple[float, float, Callable[[], None], str]] = []
        disk_full_s = min(600.0, 0.6 * schedule_step(args.hours))
        filler: list[Path] = []
        stall_from: list[float] = []
        t0 = time.monotonic()
        spawn(0.0)
        next_hour = 1
        done = False
        while not done:
            time.sleep(0.02)
            now = time.monotonic()
            pos = position()
            run = runs[-1]
            # the supervisor: a monitor that died is restarted on the audio of "now"
            rc = run.proc.poll()
            if rc is not None:
                run.rc = rc
                if rc == 0:
                    done = True
                    continue
                last = run.last_stream_s if run.last_stream_s is not None else run.start_s
                since = run.last_health_at if run.last_health_at is not None else now
                time.sleep(RESTART_S)
                resume = last + (time.monotonic() - since) * args.speed
                restart = math.ceil(resume / PIECE_S) * PIECE_S
                why = "kill -9" if run.killed else f"crash (exit {rc})"
                events.append((last, f"monitor {why}: restarted on {hms(restart)}"))
                windows.append((last, restart, f"monitor {why} -> restart"))
                if restart >= total_s:
                    done = True
                    continue
                spawn(restart)
                continue
            if pos >= (len(trace) + 1) * 600 and (st := status_mib(run.proc.pid)):
                trace.append((pos, run.index, st["VmRSS"]))
            if pos >= next_hour * 3600 and next_hour <= args.hours:
                st = status_mib(run.proc.pid)
                with contextlib.suppress(OSError):
                    fds = len(os.listdir(f"/proc/{run.proc.pid}/fd"))
                    logs = sum(p.stat().st_size for p in disk.glob("detections.sqlite*"))
                    if st:
                        hourly.append((next_hour, run.index, st["VmRSS"], fds, logs,
                                       run.proc.pid))
                next_hour += 1
            for item in [p for p in pending if p[0] <= now and p[1] <= pos]:
                pending.remove(item)
                item[2]()
                events.append((pos, item[3]))
            while plan and pos >= plan[0][0]:
                _, fault = plan.pop(0)
                events.append((pos, fault))
                if fault == "disk_full":
                    filler.append(fill(disk))
                    pending.append((now, pos + disk_full_s, filler[-1].unlink, "disk freed"))
                elif fault == "subscriber_kill":
                    sub.kill()
                    pending.append((now + RESTART_S, 0, sub.start, "subscriber restarted"))
                elif fault == "sink_kill":
                    sink.kill()
                    pending.append((now + RESTART_S, 0, sink.start, "sink restarted"))
                elif fault == "monitor_kill":
                    run.killed = True
                    run.proc.send_signal(signal.SIGKILL)
                elif fault == "source_stall":
                    (faults / "stall").touch()
                    stall_from.append(pos)

                    def unstall() -> None:
                        (faults / "stall").unlink()
                        # the catch-up after it: until the monitor is at the pace again
                        windows.append((stall_from[-1], position() + STALL_S * args.speed
                                        * 2, "source stall and catch-up"))

                    pending.append((now + STALL_S, 0, unstall, "source back"))
                elif fault == "clock_forward":
                    (faults / "clock_offset_s").write_text("86400")
                elif fault == "clock_back":
                    (faults / "clock_offset_s").write_text("0")
        wall = time.monotonic() - t0
        for item in pending:  # a fault still open at the end
            item[2]()
        final = runs[-1]
        # let the subscriber and the sink catch up with the log
        from pamlive.alerts.log import read_all

        logged_bodies = read_all(disk / "detections.sqlite")
        logged = [(b["run_id"], b["seq"]) for b in logged_bodies]
        # live: what the monitor published (seen on the bus) or logged
        published = {**bus.detections, **{(b["run_id"], b["seq"]): b for b in logged_bodies}}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = {(p[0], int(p[1])) for p in _read_lines(subscribed) if p[0] != "!"}
            if published.keys() <= got and published.keys() <= set(receiver.detections()):
                break
            time.sleep(0.5)
        sub.kill()
        sink.kill()
        bus.close()
        receiver.server.shutdown()
        log_size = sum(p.stat().st_size for p in disk.glob("detections.sqlite*"))
        clips = [p for p in (disk / "clips").rglob("*") if p.is_file()] \
            if (disk / "clips").exists() else []
        clips_size = sum(p.stat().st_size for p in clips)
        stop_lines = []
        for r in runs:
            text = (work / f"run{r.index:02d}.log").read_text(errors="replace")
            stop_lines += [f"run {r.index}: " + line.split(": ", 1)[-1]
                           for line in text.splitlines() if "stopped:" in line]

    # -- the printout ------------------------------------------------------------------------
    problems: list[str] = []
    played = sum((r.last_stream_s or r.start_s) - r.start_s for r in runs)
    print(f"stream: {args.hours:g} h x {CHANNELS} ch at {RATE} Hz (4 DCLDE 2013 recordings, "
          f"{calls_per_tile} synthetic upcalls per {TILE_S // 60}-min loop), builtin:narw, "
          f"hop {HOP_S} s")
    print(f"wall: {wall:.0f} s for the live runs -> {total_s / wall:.1f}x real time "
          f"(asked {args.speed:g}x); reference {ref_wall:.0f} s; monitor runs: {len(runs)} "
          f"(exit codes {[r.rc for r in runs]}); audio played by the monitor {played / 3600:.3f} h")
    print(f"work folder: {work}")
    print("\nfaults (stream time):")
    for at, what in sorted(events, key=lambda e: e[0]):
        print(f"  {hms(at)}  {what}")
    print("\nfault windows where samples may be lost (stream time):")
    for a, b, what in windows:
        print(f"  {hms(a)} - {hms(b)}  {what}")

    def inside(a: float, b: float) -> bool:
        return any(a < w1 + MARGIN_S and b > w0 - MARGIN_S for w0, w1, _ in windows)

    gap_lost = sum(round((w1 - w0) * RATE) for w0, w1, what in windows if "restart" in what)
    print("\nsamples lost (per channel):")
    print(f"  between runs (from a killed monitor's last health to its restart): {gap_lost} "
          f"({gap_lost / RATE:.0f} s), all inside the kill windows")
    print("  the monitor's own drop counters (health 'drops', growth summed over runs):")
    for key in ("ring_samples", "window_queue", "detection_queue", "publish"):
        n_in = sum(n for at, k, n in bus.losses if k == key and inside(at, at))
        n_out = sum(n for at, k, n in bus.losses if k == key and not inside(at, at))
        print(f"    {key:<16} {n_in} inside fault windows, {n_out} outside")
        if n_out:
            problems.append(f"{n_out} {key} lost outside fault windows")

    def abs_s(b: dict, key: str) -> float:
        t = datetime.fromisoformat(b[key].replace("Z", "+00:00"))
        return round((t - BASE_UTC).total_seconds(), 1)

    end_s = total_s - MARGIN_S
    live = sorted((abs_s(b, "start_utc"), abs_s(b, "end_utc"), b["class"])
                  for b in published.values())
    live_out = {d for d in live if not inside(d[0], d[1]) and d[1] < end_s}
    ref_out = {(round(s, 1), round(e, 1), c) for s, e, c in ref
               if not inside(s, e) and e < end_s}
    print("\ndetections (live = published on the bus or logged; analyze = StreamDetector on "
          "the same audio):")
    print(f"  live {len(live)} in all; outside fault windows: live {len(live_out)}, "
          f"analyze {len(ref_out)}, identical: {live_out == ref_out}")
    if live_out != ref_out:
        only_live, only_ref = sorted(live_out - ref_out), sorted(ref_out - live_out)
        print(f"  only live ({len(only_live)}): {[(hms(s), e - s) for s, e, _ in only_live][:10]}")
        print(f"  only analyze ({len(only_ref)}): {[(hms(s), e - s) for s, e, _ in only_ref][:10]}")
        problems.append("live != analyze outside fault windows")

    lines = _read_lines(subscribed)
    received = [(p[0], int(p[1])) for p in lines if p[0] != "!"]
    kinds = [p[2] for p in lines if p[0] != "!"]
    gaps = [" ".join(p) for p in lines if p[0] == "!"]
    posted = receiver.detections()
    log_set = set(published)
    unlogged = len(log_set - set(logged))
    print("\ndelivery (each detection the monitor published):")
    print(f"  durable log: holds {len(logged)} of {len(log_set)}; published but not logged "
          f"{unlogged}")
    if unlogged:
        problems.append(f"{unlogged} detections not in the durable log")
    print(f"  subscriber ({sub.kills} kills): received {len(received)} ({kinds.count('message')} "
          f"live, {kinds.count('replayed')} replayed); missing {len(log_set - set(received))}, "
          f"duplicated {len(received) - len(set(received))}, never published "
          f"{len(set(received) - log_set)}, gap/malformed events {len(gaps)}")
    states = [b["event"] for b in receiver.posted if "event" in b]
    print(f"  monitor states the sink forwarded, in order: {', '.join(states) or 'none'}")
    print(f"  webhook sink ({sink.kills} kills): posted {len(posted)}; missing "
          f"{len(log_set - set(posted))}, re-posted {len(posted) - len(set(posted))} "
          f"(at-least-once; the receiver de-duplicates), never published "
          f"{len(set(posted) - log_set)}")
    if log_set - set(received) or len(received) != len(set(received)) or gaps:
        problems.append("subscriber did not receive every detection exactly once")
    if log_set - set(posted):
        problems.append("webhook sink missed detections")

    print("\nmonitor at each simulated hour (RSS MiB, open files, log bytes):")
    for hour, idx, rss, fds, logs, pid in hourly:
        print(f"  hour {hour:3d}  run {idx} (pid {pid})  RSS {rss:6.1f}  files {fds:3d}  "
              f"log {logs}")
    starts = {r.index: r.start_s for r in runs}

    def spread(rows: list[tuple[int, int, float, int, int, int]], col: int) -> float:
        v = np.array([r[col] for r in rows], dtype=float)
        return float(np.max(np.abs(v / np.median(v) - 1)) * 100)

    later = [h for h in hourly if h[0] >= 2]
    if later:
        # a restarted monitor is young: flatness is judged on processes up >= 1 stream hour
        settled = [h for h in later if h[0] * 3600 - starts[h[1]] >= 3600]
        print(f"  from hour 2, all samples: RSS within {spread(later, 2):.1f} % of their "
              f"median, open files within {spread(later, 3):.1f} %")
        if settled:
            rss_dev, fd_dev = spread(settled, 2), spread(settled, 3)
            print(f"  from hour 2, monitors up >= 1 h ({len(settled)} samples): RSS within "
                  f"{rss_dev:.1f} % of the median {np.median([h[2] for h in settled]):.1f} "
                  f"MiB, open files within {fd_dev:.1f} %")
            if rss_dev > 5 or fd_dev > 5:
                problems.append("RSS or open files not flat within 5 % from hour 2")
    print("  RSS MiB every 10 stream minutes (run): " + " ".join(
        f"{mb:.0f}({idx})" for _, idx, mb in trace))
    print(f"  detection log at the end: {log_size} bytes; clips: {len(clips)} files, "
          f"{clips_size} bytes")

    print("\nhealth flags and alerts (stream time, run):")
    for at, idx, what in sorted(bus.timeline, key=lambda t: (t[1], t[0])):
        print(f"  {hms(at)}  run {idx}  {what}")
    print("\nstop lines:")
    for line in stop_lines:
        print(f"  {line}")
    crashes = [r.index for r in runs if r.rc not in (0, None) and not r.killed]
    if crashes:
        problems.append(f"monitor run(s) {crashes} crashed (not killed by the schedule)")
    if final.rc != 0 and played < total_s - 2 * PIECE_S:
        problems.append(f"the last run ended with {final.rc}")
    print("\nRESULT:", "PASS" if not problems else "FAIL: " + "; ".join(problems))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if not problems else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=24.0, help="stream hours to play")
    p.add_argument("--speed", type=float, default=60.0, help="times real time")
    p.add_argument("--seed", type=int, default=25, help="the synthetic calls")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--monitor", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--faults", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.monitor:
        return monitor_main(args.monitor, args.faults)
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
