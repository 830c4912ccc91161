"""``pamlive analyze --cluster``: 1 vs 2 local workers on the same inputs, side by side.

Inputs are a real right whale recording (DCLDE 2013, 2 kHz) upsampled to 48 kHz, as a
field recorder writes it, cut into ``--files`` files of ``--minutes`` each; plus one file
``--long`` times longer, analysed alone, to show that a worker's memory does not grow
with file length (chunks are read where they live, a chunk at a time).

Printed per worker count (median of ``--repeats`` runs): wall time, speed-up against one
worker, throughput in channel-hours of audio per CPU-hour of the workers, and peak
resident memory per worker; then the peak for the short and the long file.

    python benchmarks/bench_cluster.py [--files 4] [--minutes 10] [--long 4] [--repeats 1]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from distributed import Client, LocalCluster
from scipy.signal import resample_poly

from pamlive.cluster.run import analyze_on_cluster
from pamlive.inference.package import load_model_package

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared/data/narw-dclde2013/train/narw/NOPP6_EST_20090328_000000.wav"
RATE = 48000


def worker_usage() -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of this worker process.

    The peak is ``VmHWM`` of this process image: ``ru_maxrss`` would also count the
    benchmark process it was forked from (Linux keeps that figure across exec).
    """
    u = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status", encoding="ascii") as fh:
        hwm_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    return u.ru_utime + u.ru_stime, hwm_kb / 1024


def make_inputs(folder: Path, files: int, minutes: float, long: int) -> tuple[list[Path], Path]:
    x, rate = sf.read(SOURCE, dtype="float32")
    up = resample_poly(x, RATE // rate, 1).astype(np.float32)
    need = int(minutes * 60 * RATE)
    tiled = np.tile(up, -(-need * max(files, long) // up.size))
    paths = []
    for i in range(files):
        p = folder / f"rec_{i}.wav"
        sf.write(p, tiled[i * need:(i + 1) * need], RATE, subtype="PCM_16")
        paths.append(p)
    long_path = folder / "long" / "rec_long.wav"
    long_path.parent.mkdir()
    sf.write(long_path, tiled[: long * need], RATE, subtype="PCM_16")
    return paths, long_path


def run(workers: int, inputs: list[Path], out: Path,
        chunk_s: float) -> tuple[float, float, float, float]:
    """(wall s, worker CPU s, max worker peak RSS MB, the same before the run)."""
    package = load_model_package("builtin:narw")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.run(load_model_package, "builtin:narw")  # warm imports and Numba caches
        before = client.run(worker_usage)
        idle = max(v[1] for v in before.values())
        t0 = time.perf_counter()
        analyze_on_cluster(client, inputs, package, "builtin:narw", out, chunk_s=chunk_s,
                           progress=False)
        wall = time.perf_counter() - t0
        after = client.run(worker_usage)
    cpu = sum(after[w][0] - before[w][0] for w in after)
    return wall, cpu, max(v[1] for v in after.values()), idle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--long", type=int, default=4, help="the long file is this many times longer")
    ap.add_argument("--chunk-s", type=float, default=300.0)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs, long_path = make_inputs(folder, args.files, args.minutes, args.long)
        hours = args.files * args.minutes / 60
        print(f"{args.files} files x {args.minutes:g} min, 1 ch x {RATE} Hz "
              f"({hours:.2f} channel-hours), chunks of {args.chunk_s:g} s")
        print(f"{'workers':>7} {'wall s':>8} {'speed-up':>8} {'ch-h per CPU-h':>15} "
              f"{'peak RSS/worker MB':>19}")
        base = None
        for workers in (1, 2):
            runs = [run(workers, inputs, folder / f"out{workers}_{i}", args.chunk_s)
                    for i in range(args.repeats)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            base = base or wall
            print(f"{workers:>7} {wall:>8.1f} {base / wall:>8.2f} {hours / (cpu / 3600):>15.0f} "
                  f"{max(r[2] for r in runs):>19.0f}")
        short = run(1, inputs[:1], folder / "short", args.chunk_s)
        long = run(1, [long_path], folder / "long_out", args.chunk_s)
        print(f"peak RSS of one worker: {args.minutes:g}-min file {short[2]:.0f} MB, "
              f"{args.minutes * args.long:g}-min file {long[2]:.0f} MB "
              f"(with the model loaded, before analysing: {short[3]:.0f} MB)")


if __name__ == "__main__":
    main()
