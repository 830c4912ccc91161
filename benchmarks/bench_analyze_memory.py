"""Peak RSS of ``pamlive analyze`` against file length: memory must not grow with it.

Writes 64-channel noise files (16-bit WAV, 8 kHz by default) of the given lengths into a
scratch folder (never the repository), analyses each in its own process with the
built-in right whale config and prints the peak RSS of each run, side by side.

    python benchmarks/bench_analyze_memory.py --minutes 15 60
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# runs the command as its child and prints that child's peak RSS in KiB (Linux ru_maxrss)
_MEASURE = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")


def write_noise(path: Path, seconds: float, channels: int, rate: int) -> Path:
    """Gaussian noise written 10 s at a time, so making the file needs no memory."""
    rng = np.random.default_rng(0)
    n = round(seconds * rate)
    with sf.SoundFile(path, "w", rate, channels, subtype="PCM_16") as f:
        for i in range(0, n, 10 * rate):
            block = 0.05 * rng.standard_normal((min(10 * rate, n - i), channels))
            f.write(block.astype(np.float32))
    return path


def peak_rss_mb(audio: Path, outdir: Path, config: str = "builtin:narw") -> float:
    """Peak RSS (MiB) of one ``pamlive analyze`` process over ``audio``."""
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "pamlive", "analyze",
           str(audio), "-c", config, "-o", str(outdir), "--no-progress"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    kib, rc = int(out[-2]), int(out[-1])
    if rc != 0:
        raise RuntimeError(f"pamlive analyze {audio} exited {rc}")
    return kib / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[15.0, 60.0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=int, default=8000)
    ap.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        rows = []
        for minutes in args.minutes:
            audio = write_noise(Path(tmp) / f"noise_{minutes:g}min.wav", minutes * 60,
                                args.channels, args.rate)
            t0 = time.perf_counter()
            rss = peak_rss_mb(audio, Path(tmp) / "out")
            rows.append((minutes, rss, time.perf_counter() - t0))
            audio.unlink()
    print(f"pamlive analyze, {args.channels} ch at {args.rate} Hz, built-in NARW model")
    print(f"{'minutes':>8} {'peak RSS MiB':>13} {'wall s':>8} {'RSS / first':>12}")
    for minutes, rss, wall in rows:
        print(f"{minutes:8g} {rss:13.0f} {wall:8.1f} {rss / rows[0][1]:12.3f}")


if __name__ == "__main__":
    main()
