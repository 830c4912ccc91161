"""Bytes per second the dashboard sends to its terminal (what a ship's SSH link carries).

Runs a real ``pamlive demo --headless`` (simulated 4-channel array: health, heartbeats and
spectrum rows on a real bus), and the dashboard in this process drawing into a
160 x 48 truecolour terminal whose output is counted, for ``--seconds``.

    python benchmarks/bench_dashboard_bytes.py --seconds 20
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import threading
import time

from rich.console import Console

from pamlive.dashboard import run_dashboard


class CountingTerminal(io.StringIO):
    """A terminal that keeps only the count of bytes written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.counting = False
        self.bytes = 0
        self.frames = 0

    def write(self, s: str) -> int:
        if not self.counting:
            return len(s)
        self.bytes += len(s.encode("utf-8"))
        self.frames += s.count("\x1b[H")  # each full-screen frame starts at home
        return len(s)

    def isatty(self) -> bool:
        return True


def measure(seconds: float, width: int, height: int,
            warmup: float = 15.0) -> tuple[float, float]:
    """(bytes per second, frames per second) while a demo monitor runs, counted once the
    spectrogram strip has filled (``warmup`` seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{tmp}/pub"
        monitor = subprocess.Popen(
            [sys.executable, "-m", "pamlive", "demo", "--headless", "--duration",
             str(warmup + seconds + 10), "--publish", endpoint, "--replay",
             f"ipc://{tmp}/replay"], stderr=subprocess.DEVNULL)
        try:
            time.sleep(4.0)  # the monitor is up and publishing
            term = CountingTerminal()
            console = Console(file=term, width=width, height=height, force_terminal=True,
                              color_system="truecolor")
            start = threading.Timer(warmup, lambda: setattr(term, "counting", True))
            start.start()
            run_dashboard(endpoint, duration_s=warmup + seconds, bell=False, console=console)
            elapsed = seconds
        finally:
            monitor.terminate()
            monitor.wait()
    return term.bytes / elapsed, term.frames / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--height", type=int, default=48)
    args = ap.parse_args()
    rate, fps = measure(args.seconds, args.width, args.height)
    print(f"dashboard at {args.width}x{args.height}: {rate / 1024:.1f} KiB/s, "
          f"{fps:.2f} frames/s, {rate / max(fps, 1e-9) / 1024:.1f} KiB/frame "
          f"over {args.seconds:g} s")


if __name__ == "__main__":
    main()
