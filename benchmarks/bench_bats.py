"""Bats: pamlive against batdetect2's own command, and 4 x 384 kHz live at real time.

(a) ``analyze``: CPU time (user + sys of the process and its children) of
    ``pamlive analyze`` and of batdetect2 1.3.1's own ``batdetect2 detect AUDIO_DIR
    OUT_DIR THRESHOLD`` on the same recordings (``../shared/data/bats``, 3 x 8 s at
    250 kHz), one core (``OMP_NUM_THREADS=1`` and friends, ``taskset -c 0`` where there is
    one), the same detection threshold; medians of ``--repeats`` runs, side by side, and
    their ratio.
(b) ``live``: ``pamlive run --play FILE --headless`` on a 4-channel (``--channels``)
    384 kHz recording made from the 250 kHz ones (resampled, in a temporary folder),
    played at real time for ``--seconds`` (looped), with a real ZeroMQ subscriber:
    samples lost (ring overruns, input overflows), windows and results dropped, and the
    CPU the monitor process spent per second of audio after its start-up (user + sys,
    the drain of a backlog at the end included: what a core must give it to keep up;
    also its share of a core between its first and last health message, and over its
    whole life); medians of ``--repeats`` runs.
(b') ``--passes 1,0.25,0.05``: (b) with the activity gate (``[model] activity_gate``) on
    and off, side by side (interleaved runs): 4 channels at 384 kHz where bat passes (the
    recordings) take the given share of each channel's time and the recordings' own
    call-free background (no call above 0.05 within 10 ms, cut out and looped) the rest;
    CPU per audio second, samples lost, the network's share of channel-windows and the
    calls (the same on as off), at detection threshold ``--gate-threshold`` (0.5, the
    least the gate supports) and level ``--gate``.
(c) ``stages``: where (b)'s CPU goes, each live stage run alone on this thread over the
    same stream: resampling + front end, network + decode, de-duplication, the
    dashboard's spectrum strip.

The model package is converted from the installed batdetect2 (never committed), or given
with ``--package``. The config: ``configs/bats.toml``'s ``[model]`` and ``[buffers]``
(where it is there) over these defaults: hop 3 s (batdetect2's chunks), detection
threshold ``--threshold``, window queue 8 (a 4-channel window is 21 MB); the package path
and threads from here.

    python benchmarks/bench_bats.py [--part analyze|live|stages|all] [--repeats 3]
        [--seconds 66] [--threshold 0.3] [--package DIR] [--hop S] [--threads N]
        [--channels 4] [--passes 1,0.25,0.05 [--gate 0.95] [--gate-threshold 0.5]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import zmq
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[1]
BATDETECT2 = Path(os.environ.get("PAMLIVE_BATDETECT2", "/work/venv-bats/bin/batdetect2"))
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                               "NUMBA_NUM_THREADS")}
LIVE_RATE = 384000


def shared_dir() -> Path:
    return Path(os.environ.get("PAMLIVE_SHARED", REPO.parent / "shared"))


def recordings() -> list[Path]:
    paths = sorted((shared_dir() / "data" / "bats").glob("*.wav"))
    if not paths:
        sys.exit(f"no bat recordings in {shared_dir() / 'data' / 'bats'}")
    return paths


def pinned(cmd: list[str]) -> list[str]:
    """``cmd`` on one core (``taskset -c 0``) where taskset exists."""
    return ["taskset", "-c", "0", *cmd] if shutil.which("taskset") else cmd


def cpu_of(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; its (CPU seconds, wall seconds), children included."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return usage.ru_utime + usage.ru_stime, wall


def bats_sections(package: Path, args: argparse.Namespace, threads: int,
                  **model: object) -> str:
    """``[model]`` and ``[buffers]`` of configs/bats.toml (where it exists; else hop 3 s,
    batdetect2's chunks, the threshold asked for and a short window queue: a 4-channel
    window is 21 MB) with this package and threads."""
    sections: dict[str, dict[str, object]] = {
        "model": {"hop_s": 3.0, "detection_threshold": args.threshold},
        "buffers": {"window_queue": 8}}
    shipped = REPO / "pamlive" / "configs" / "bats.toml"
    if shipped.exists():
        doc = tomllib.loads(shipped.read_text())
        for name, section in sections.items():
            section.update(doc.get(name, {}))
    sections["model"].update(path=str(package), threads=threads)
    if args.hop is not None:
        sections["model"]["hop_s"] = args.hop
    if args.precision is not None:
        sections["model"]["precision"] = args.precision
    sections["model"].update(model)
    return "".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in s.items())
                   for name, s in sections.items())


def write_config(folder: Path, model: str, extra: str = "") -> Path:
    cfg = folder / "bench.toml"
    cfg.write_text(f'station = "bench"\ndata_dir = "{folder / "data"}"\n{model}'
                   f'[alerts]\npublish = "ipc://{folder}/pub"\nreplay = "ipc://{folder}/replay"\n'
                   f'log = "calls.sqlite"\n{extra}', encoding="utf-8")
    return cfg


def package_dir(args: argparse.Namespace, tmp: Path) -> Path:
    if args.package:
        return Path(args.package)
    out = tmp / "batdetect2-package"
    subprocess.run([sys.executable, "-m", "pamlive", "import-model", "batdetect2", "-o",
                    str(out)], check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=subprocess.DEVNULL)
    return out


# -- (a) analyze against batdetect2 -------------------------------------------------------


def bench_analyze(args: argparse.Namespace, package: Path, tmp: Path) -> None:
    if not BATDETECT2.exists():
        sys.exit(f"batdetect2's command is not at {BATDETECT2} (PAMLIVE_BATDETECT2)")
    audio = tmp / "audio"
    audio.mkdir()
    for p in recordings():
        (audio / p.name).symlink_to(p)
    seconds = sum(sf.info(p).duration for p in recordings())
    cfg = write_config(tmp, bats_sections(package, args, 1))
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(REPO)}
    runs: dict[str, list[tuple[float, float]]] = {"pamlive analyze": [], "batdetect2 detect": []}
    for k in range(args.repeats):  # interleaved, so both see the same machine load
        out = tmp / f"out{k}"
        runs["pamlive analyze"].append(cpu_of(pinned(
            [sys.executable, "-m", "pamlive", "analyze", str(audio), "-c", str(cfg), "-o",
             str(out / "pamlive"), "--no-progress", "--threshold", str(args.threshold)]), env))
        runs["batdetect2 detect"].append(cpu_of(pinned(
            [str(BATDETECT2), "detect", str(audio), str(out / "batdetect2"),
             str(args.threshold)]), env))
    print(f"\n(a) {len(recordings())} recordings, {seconds:.0f} s at 250 kHz, threshold "
          f"{args.threshold}, one core, medians of {args.repeats}")
    print(f"{'command':<20} {'CPU s':>8} {'wall s':>8} {'CPU s per audio s':>18}")
    cpu = {}
    for name, values in runs.items():
        cpu[name] = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"{name:<20} {cpu[name]:8.2f} {wall:8.2f} {cpu[name] / seconds:18.3f}")
    ratio = cpu["batdetect2 detect"] / cpu["pamlive analyze"]
    print(f"CPU time ratio batdetect2 / pamlive: {ratio:.2f}x")


# -- (b) live, 4 x 384 kHz ----------------------------------------------------------------


def make_live_file(folder: Path, n_channels: int) -> Path:
    """Every recording once per channel, rotated per channel, resampled to 384 kHz."""
    parts = [sf.read(p, dtype="float32")[0] for p in recordings()]
    channels = []
    for ch in range(n_channels):
        order = parts[ch % len(parts):] + parts[: ch % len(parts)]
        channels.append(resample_poly(np.concatenate(order), 384, 250).astype(np.float32))
    path = folder / "20200817_011332_4ch_384k.wav"  # its name gives the stream start
    sf.write(path, np.clip(np.stack(channels, axis=1), -1, 1), LIVE_RATE, subtype="PCM_16")
    return path


class Health:
    """Every health message of the monitor, with the monitor's CPU time when it came."""

    def __init__(self, endpoint: str, pid_of: dict[str, int]) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.subscribe(b"")
        self.sock.connect(endpoint)
        self.pid_of = pid_of
        self.samples: list[tuple[float, float, dict]] = []  # (wall, cpu s, body)
        self.calls: list[tuple[int, int, str]] = []  # (channel, start sample, species)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            if not self.sock.poll(50):
                continue
            topic, body = self.sock.recv_multipart()
            if topic.startswith(b"call."):
                call = json.loads(body)
                self.calls.append((call["channel"], call["start_sample"], call["species"]))
            if topic != b"health" or "pid" not in self.pid_of:
                continue
            try:
                fields = Path(f"/proc/{self.pid_of['pid']}/stat").read_text().rsplit(")", 1)[1]
            except OSError:
                continue
            utime, stime = (int(v) for v in fields.split()[11:13])
            self.samples.append((time.perf_counter(), (utime + stime) / tick,
                                 json.loads(body)))

    def close(self) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        self.sock.close(linger=0)
        self.ctx.term()


def live_once(cfg: Path, wav: Path, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    pid_of: dict[str, int] = {}
    endpoint = f"ipc://{cfg.parent}/pub"
    health = Health(endpoint, pid_of)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pamlive", "run", "-c", str(cfg), "--play",
                             str(wav), "--headless", "--duration", str(seconds)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pid_of["pid"] = proc.pid
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    health.close()
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"pamlive run failed:\n{err[-3000:]}")
    running = [s for s in health.samples if not s[2].get("final")]
    if len(running) < 3:
        sys.exit("too few health messages to measure the steady state")
    (w0, c0, first), (w1, c1, _) = running[0], running[-1]
    last = health.samples[-1][2]
    drops = last["drops"]
    total_cpu = usage.ru_utime + usage.ru_stime
    return {
        "audio_s": last["stream_time_s"],
        # CPU the monitor spent per second of audio after its start-up (the drain of what
        # was queued at the end included): what one core must give it to keep up
        "cpu_per_audio_s": (total_cpu - c0) / (last["stream_time_s"] - first["stream_time_s"]),
        "steady_cpu": (c1 - c0) / (w1 - w0),
        "process_cpu": total_cpu / wall,
        "lost": drops["ring_samples"] + last["capture"]["overflows"],
        "dropped": drops["window_queue"] + drops["detection_queue"] + drops["publish"],
        "calls": len(health.calls),
        "call_list": sorted(health.calls),
        "inference_ms": last["inference"]["mean_batch_ms"] or 0.0,
        "network": network_share(last),
    }


def network_share(health: dict) -> float:
    """The share of channel-windows the network ran on (the activity gate skipped the
    rest), from a health message's ``calls`` section."""
    counts = health.get("calls", {}).get("channel_windows", {})
    total = counts.get("run", 0) + counts.get("skipped", 0)
    return counts.get("run", 0) / total if total else float("nan")


def bench_live(args: argparse.Namespace, package: Path, tmp: Path) -> None:
    wav = make_live_file(tmp, args.channels)
    cfg = write_config(tmp, bats_sections(package, args, args.threads),
                       "[source]\nkind = \"replay\"\nloop = true\nspeed = 1.0\n"
                       f"files = [\"{wav}\"]\n")
    runs = [live_once(cfg, wav, args.seconds) for _ in range(args.repeats)]
    print(f"\n(b) live: {args.channels} ch x {LIVE_RATE} Hz played at real time, "
          f"{args.seconds:.0f} s per run, ORT threads {args.threads}, medians of "
          f"{args.repeats}")
    for key, label in (("audio_s", "audio played (s)"), ("lost", "samples lost"),
                       ("dropped", "windows/results/messages dropped"),
                       ("calls", "calls published"),
                       ("inference_ms", "mean inference batch (ms)")):
        print(f"{label:<36} {statistics.median(r[key] for r in runs):10.1f}   "
              f"(runs: {', '.join(f'{r[key]:.0f}' for r in runs)})")
    for key, label in (("cpu_per_audio_s", "CPU per audio second (% of a core)"),
                       ("steady_cpu", "CPU, steady state (% of one core)"),
                       ("process_cpu", "CPU, whole process (% of one core)")):
        print(f"{label:<36} {100 * statistics.median(r[key] for r in runs):10.1f}   "
              f"(runs: {', '.join(f'{100 * r[key]:.1f}' for r in runs)})")


# -- (b') passes and quiet, the activity gate on and off ----------------------------------


def fade(x: np.ndarray, rate: int, seconds: float = 0.005) -> np.ndarray:
    """``x`` with half-Hann fades in and out (splices without clicks)."""
    n = min(int(seconds * rate), x.size // 2)
    ramp = np.hanning(2 * n)[:n].astype(np.float32)
    x = x.astype(np.float32)
    x[:n] *= ramp
    x[x.size - n:] *= ramp[::-1]
    return x


def call_free_background(package: Path, tmp: Path, guard_s: float = 0.01,
                         least_s: float = 0.05) -> np.ndarray:
    """The recordings' stretches without a call above 0.05 (pamlive analyze, hop 3 s) within
    ``guard_s``, each at least ``least_s`` long, faded and joined; at 384 kHz."""
    from pamlive.analyze import analyze_files
    from pamlive.inference.package import load_model_package

    result = analyze_files(recordings(), load_model_package(package), tmp / "quiet", hop_s=3.0,
                           detection_threshold=0.05, progress=False)
    pieces = []
    for f in result.files:
        x, rate = sf.read(f.path, dtype="float32")
        t = 0.0
        busy = sorted((c.start_s - guard_s, c.end_s + guard_s) for c in f.calls)
        for a, b in [*busy, (x.size / rate, x.size / rate)]:
            if a - t >= least_s:
                pieces.append(fade(x[int(t * rate):int(a * rate)], rate))
            t = max(t, b)
    return resample_poly(np.concatenate(pieces), 384, 250).astype(np.float32)


def make_mix_file(folder: Path, n_channels: int, share: float, seconds: float,
                  quiet: np.ndarray) -> Path:
    """``seconds`` of 4 channels: on each, one stretch of bat passes (the recordings, as
    in :func:`make_live_file`) taking ``share`` of the time, at its own offset, and the
    call-free background the rest."""
    n = int(seconds * LIVE_RATE)
    dense = sf.read(make_live_file(folder, n_channels), dtype="float32")[0]
    channels = []
    for ch in range(n_channels):
        x = np.resize(quiet, n)
        k = int(share * n)
        if k:
            at = (ch * n // n_channels + np.arange(k)) % n
            x[at] = fade(np.resize(dense[:, ch], k), LIVE_RATE)
        channels.append(x)
    path = folder / f"20200817_011332_mix{share:g}.wav"
    sf.write(path, np.clip(np.stack(channels, axis=1), -1, 1), LIVE_RATE, subtype="PCM_16")
    return path


def same_calls(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same calls in two runs, up to where both had played (``--duration`` is wall time,
    so one run may play a little further; a window ends 3 s after its start, and a call is
    published once the next window has been decoded)."""
    end = (min(a["audio_s"], b["audio_s"]) - 6.0) * LIVE_RATE
    return ([c for c in a["call_list"] if c[1] < end]
            == [c for c in b["call_list"] if c[1] < end])


def bench_passes(args: argparse.Namespace, package: Path, tmp: Path) -> None:
    if args.quiet == "real":
        quiet = call_free_background(package, tmp)
        what = f"the recordings' call-free background ({quiet.size / LIVE_RATE:.1f} s, looped)"
    else:  # a recorder's self-noise on a night without bats
        quiet = np.random.default_rng(0).normal(0, 0.001, LIVE_RATE * 10).astype(np.float32)
        what = "white noise at -60 dBFS (a recorder's self-noise)"
    print(f"\n(b') live: {args.channels} ch x {LIVE_RATE} Hz at real time, {args.seconds:.0f} s "
          f"per run, bat passes taking a share of the time and {what} the rest; detection "
          f"threshold {args.gate_threshold}, activity gate {args.gate} vs off; medians of "
          f"{args.repeats}")
    print(f"{'passes':>7} {'CPU off %':>10} {'CPU on %':>9} {'off/on':>7} {'network on %':>13} "
          f"{'lost off/on':>12} {'calls off/on':>13} {'same calls':>11}")
    for share in args.passes:
        folder = tmp / f"mix{share:g}"
        folder.mkdir()
        wav = make_mix_file(folder, args.channels, share, args.seconds, quiet)
        runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        for _ in range(args.repeats):  # interleaved: both see the same machine load
            for name, level in (("off", False), ("on", args.gate)):
                cfg = write_config(folder, bats_sections(
                    package, args, args.threads, detection_threshold=args.gate_threshold,
                    activity_gate=level),
                    f'[source]\nkind = "replay"\nloop = true\nspeed = 1.0\nfiles = ["{wav}"]\n')
                runs[name].append(live_once(cfg, wav, args.seconds))
        cpu = {k: statistics.median(r["cpu_per_audio_s"] for r in v) for k, v in runs.items()}
        lost = {k: max(r["lost"] + r["dropped"] for r in v) for k, v in runs.items()}
        calls = {k: statistics.median(r["calls"] for r in v) for k, v in runs.items()}
        same = all(same_calls(a, b) for a, b in zip(runs["off"], runs["on"], strict=True))
        network = statistics.median(r["network"] for r in runs["on"])
        print(f"{100 * share:6.0f}% {100 * cpu['off']:10.1f} {100 * cpu['on']:9.1f} "
              f"{cpu['off'] / cpu['on']:6.2f}x {100 * network:12.0f}% "
              f"{lost['off']:>5}/{lost['on']:<6} {calls['off']:>6.0f}/{calls['on']:<6.0f} "
              f"{'yes' if same else 'NO':>11}")
        each = {k: ", ".join(f"{100 * r['cpu_per_audio_s']:.1f}" for r in v)
                for k, v in runs.items()}
        print(f"        runs, CPU % off: {each['off']}; on: {each['on']}")


# -- (c) where the CPU goes: the live stages one by one, on one thread ------------------------


def bench_stages(args: argparse.Namespace, package: Path, tmp: Path) -> None:
    """The live path's stages on the 4-channel 384 kHz stream, one after the other on this
    thread (``process_time``), as shares of a core at real time."""
    from pamlive.calls.dedup import CallDeduplicator
    from pamlive.calls.stream import window_calls
    from pamlive.config import load_config
    from pamlive.inference.heatmaps import EventModel
    from pamlive.inference.package import load_model_package
    from pamlive.live.spectrum import SpectrumFeed
    from pamlive.windows import make_event_windower

    cfg = load_config(write_config(tmp, bats_sections(package, args, 1)))
    audio, rate = sf.read(make_live_file(tmp, args.channels), dtype="float32")
    seconds = audio.shape[0] / rate
    pkg = load_model_package(str(package))
    block = rate // 10
    shares: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        t = time.process_time()
        windower = make_event_windower(pkg, rate, args.channels, cfg.model.hop_s)
        windows = []
        for i in range(0, audio.shape[0], block):
            windows += windower.push(audio[i:i + block])
        windows += windower.flush()
        front = time.process_time() - t
        model = EventModel(pkg, threads=1, precision=cfg.model.precision)
        t = time.process_time()
        decoded = [window_calls(model, [w], rate, threshold=cfg.model.detection_threshold)[0]
                   for w in windows]
        network = time.process_time() - t
        t = time.process_time()
        dedup = CallDeduplicator(windower.hop_s)
        for w, calls in zip(windows, decoded, strict=True):
            dedup.push(calls, w.start_sample / rate, w.end_sample / rate)
        dedup.flush()
        dedupe = time.process_time() - t
        t = time.process_time()
        feed = SpectrumFeed(rate, args.channels, fmax_hz=pkg.events.max_freq_hz
                            if pkg.events else 500.0)
        for i in range(0, audio.shape[0], block):
            feed.push(audio[i:i + block])
        strip = time.process_time() - t
        for name, cpu in (("resample + front end (windowing thread)", front),
                          ("network + decode (inference thread)", network),
                          ("de-duplication (inference thread)", dedupe),
                          ("spectrum strip (windowing thread)", strip)):
            shares.setdefault(name, []).append(cpu / seconds)
    print(f"\n(c) stages on {args.channels} ch x {rate} Hz, hop {cfg.model.hop_s} s, "
          f"{seconds:.0f} s of audio, one thread, medians of {args.repeats}")
    for name, values in shares.items():
        print(f"{name:<44} {100 * statistics.median(values):6.1f} % of a core")
    total = sum(statistics.median(v) for v in shares.values())
    print(f"{'sum':<44} {100 * total:6.1f} % of a core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("analyze", "live", "stages", "all"), default="all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=66.0, help="live run length")
    ap.add_argument("--threshold", type=float, default=0.3,
                    help="detection threshold (batdetect2's; pamlive's without bats.toml)")
    ap.add_argument("--package", help="a converted batdetect2 package (default: convert)")
    ap.add_argument("--hop", type=float, help="window hop (default: configs/bats.toml's)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads, live")
    ap.add_argument("--precision", choices=("float32", "bfloat16"),
                    help="[model] precision (default: configs/bats.toml's)")
    ap.add_argument("--channels", type=int, default=4, help="channels at 384 kHz, (b) (c)")
    ap.add_argument("--passes", type=lambda v: [float(x) for x in v.split(",")],
                    help="(b') instead of (b): shares of time with bat passes, e.g. 1,0.25,0.05")
    ap.add_argument("--gate", type=float, default=0.95, help="(b') activity gate level")
    ap.add_argument("--quiet", choices=("real", "noise"), default="real",
                    help="(b') between passes: the recordings' call-free stretches, or noise")
    ap.add_argument("--gate-threshold", type=float, default=0.5,
                    help="(b') detection threshold (the gate needs >= 0.5)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bats-") as folder:
        tmp = Path(folder)
        package = package_dir(args, tmp)
        if args.part in ("analyze", "all"):
            bench_analyze(args, package, tmp)
        if args.part in ("live", "all"):
            if args.passes:
                bench_passes(args, package, tmp)
            else:
                bench_live(args, package, tmp)
        if args.part in ("stages", "all"):
            bench_stages(args, package, tmp)


if __name__ == "__main__":
    main()
