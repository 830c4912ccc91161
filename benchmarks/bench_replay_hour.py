"""An hour of 4-channel 48 kHz audio through the live path at an accelerated pace.

The stream is a real recording (the PAMGuard right whale tutorial, 8 kHz, resampled to
48 kHz), tiled to one hour, on four channels with small per-channel delays and gains.
It is played back through the live engine (ring -> windows -> ONNX -> merge -> a real
ZeroMQ bus) at ``--speed`` times real time, while a subscriber counts every message.

Printed: wall time and achieved speed; samples overwritten in the ring, windows and
scores dropped, messages dropped by the bus, seq gaps seen by the subscriber; the live
detections against the synchronous reference (``StreamDetector``, as ``pamlive analyze``)
on the same samples; resident memory over the run (start, middle, end, slope).

    python benchmarks/bench_replay_hour.py --speed 60 [--model builtin:narw] [--hours 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import zmq
from scipy.signal import resample_poly

from pamlive.alerts.bus import AlertBus
from pamlive.config import load_config
from pamlive.engine import Engine
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import load_model_package
from pamlive.kinds import open_kind
from pamlive.pipeline import StreamDetector
from pamlive.sources.playback import PacedSource

REPO = Path(__file__).resolve().parents[1]
RECORDING = "data/pamguard-tutorial/PAM_20010327_091800.wav"
RATE = 48000
CHANNELS = 4
TILE_S = 120  # whole hops, so every tile is windowed identically


def shared_dir() -> Path:
    return Path(os.environ.get("PAMLIVE_SHARED", REPO.parent / "shared"))


def make_tile() -> np.ndarray:
    """TILE_S seconds, 4 channels at 48 kHz: the recording with per-channel delay/gain."""
    audio, rate = sf.read(shared_dir() / RECORDING, dtype="float32", always_2d=True)
    mono = resample_poly(audio[: TILE_S * rate, 0], RATE // rate, 1).astype(np.float32)
    delays = [0, 7, 19, 31]  # samples: a plane wave across a small array
    gains = [1.0, 0.8, 1.2, 0.9]
    return np.stack([np.roll(mono, d) * g for d, g in zip(delays, gains, strict=True)], axis=1)


def tiled_blocks(tile: np.ndarray, total: int, blocksize: int) -> Iterator[np.ndarray]:
    pos = 0
    while pos < total:
        start = pos % tile.shape[0]
        n = min(blocksize, tile.shape[0] - start, total - pos)
        yield tile[start : start + n]
        pos += n


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Counter:
    """Subscribes to the bus; counts messages, seq gaps and detections."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.rcvhwm = 0
        self.sock.subscribe(b"")
        self.sock.connect(endpoint)
        self.last_seq: int | None = None
        self.gaps = 0
        self.messages = 0
        self.detections: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            topic, body = self.sock.recv_multipart()
            msg = json.loads(body)
            self.messages += 1
            if self.last_seq is not None and msg["seq"] != self.last_seq + 1:
                self.gaps += msg["seq"] - self.last_seq - 1
            self.last_seq = msg["seq"]
            if topic.startswith(b"detection."):
                self.detections.append((msg["start_sample"], msg["end_sample"]))

    def close(self) -> None:
        time.sleep(0.5)
        self.stop.set()
        self.thread.join()
        self.sock.close(linger=0)
        self.ctx.term()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=60.0, help="times real time")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--blocksize", type=int, default=1024, help="frames per capture block")
    ap.add_argument("--model", default="builtin:narw")
    args = ap.parse_args()

    tile = make_tile()
    total = round(args.hours * 3600 * RATE)
    tmp = Path(tempfile.mkdtemp(prefix="pamlive-bench-"))
    cfg_path = tmp / "bench.toml"
    cfg_path.write_text(
        f'data_dir = "{tmp}"\n[model]\npath = "{args.model}"\n'
        f'[alerts]\npublish = "ipc://{tmp}/pub"\nreplay = "ipc://{tmp}/replay"\n',
        encoding="utf-8",
    )
    cfg = load_config(cfg_path)
    package = load_model_package(cfg.model.path)
    source = PacedSource(
        "tiled recording",
        RATE,
        CHANNELS,
        lambda: tiled_blocks(tile, total, args.blocksize),
        speed=args.speed,
    )
    bus = AlertBus(cfg.alerts.publish, station="bench", log_path=tmp / "detections.sqlite")
    monitor = Engine(cfg, source, open_kind(cfg.model), bus)
    bus.start()
    counter = Counter(bus.endpoint)
    time.sleep(0.5)  # the subscriber joins before the first message

    rss: list[tuple[float, float, float]] = []  # (wall s, stream s, MB)
    done = threading.Event()

    def sample_rss() -> None:
        while not done.wait(1.0):
            rss.append((time.monotonic() - t0, monitor.ring.written / RATE, rss_mb()))

    t0 = time.monotonic()
    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    error = monitor.run(duration_s=None)
    wall = time.monotonic() - t0
    done.set()
    sampler.join()
    bus.close()
    counter.close()
    health = monitor.health()
    stats = bus.stats()

    ref = StreamDetector(
        package,
        Classifier(package),
        RATE,
        CHANNELS,
        hop_s=cfg.model.hop_s,
        max_merge=cfg.model.max_merge,
    )
    expected: list[tuple[int, int]] = []
    for block in tiled_blocks(tile, total, 1 << 18):
        expected += [(d.start_sample, d.end_sample) for d in ref.push(block)]
    expected += [(d.start_sample, d.end_sample) for d in ref.finish()]

    stream_s = monitor.ring.written / RATE
    print(
        f"stream: {stream_s / 3600:.3f} h x {CHANNELS} ch at {RATE} Hz, "
        f"blocks of {args.blocksize}, model {package.name} {package.version}"
    )
    print(
        f"wall time: {wall:.1f} s -> {stream_s / wall:.1f}x real time "
        f"(asked {args.speed:g}x); source error: {error}"
    )
    print(
        f"ring overwritten samples: {health['ring']['overwritten_samples']}; "
        f"window drops: {health['drops']['window_queue']}; "
        f"score drops: {health['drops']['detection_queue']}; "
        f"bus drops: {stats['dropped']}"
    )
    print(f"messages received: {counter.messages}; seq gaps: {counter.gaps}")
    same = counter.detections == expected
    print(
        f"detections: live {len(counter.detections)}, reference {len(expected)}, identical: {same}"
    )
    lat = stats["latency_ms"]
    print(
        f"alert latency (accelerated, so not field figures): median {lat['median']:.1f} ms, "
        f"p95 {lat['p95']:.1f} ms"
    )
    print(
        f"inference: {health['inference']['windows']} windows in "
        f"{health['inference']['batches']} batches, mean batch "
        f"{health['inference']['mean_batch_ms']} ms"
    )
    if rss:
        mb = np.array([r[2] for r in rss])
        deciles = [mb[min(len(mb) - 1, round(q * (len(mb) - 1)))] for q in np.linspace(0, 1, 11)]
        print("RSS MB at 0, 10, ..., 100 % of the run: " + " ".join(f"{v:.0f}" for v in deciles))
        print(
            f"RSS MB: max {mb.max():.0f}; change over the second half of the run: "
            f"{mb[-1] - mb[len(mb) // 2]:+.1f} MB"
        )


if __name__ == "__main__":
    main()
