"""Live CPU at 8 channels x 96 kHz with the default right whale configuration (issue 12).

Two minutes of a real right whale recording (DCLDE 2013, 2 kHz, nine annotated upcalls)
resampled to 96 kHz on eight channels (per-channel gains) are replayed at real time
through ``pamlive run --headless``: each tree's own ``builtin:narw`` configuration, with
only the source (replay of that file), the data folder and the bus endpoints changed.
CPU is the process's user + sys time over its wall time (what ``/usr/bin/time`` gives),
start-up and shutdown included. A "before" tree (a git ref, checked out in a temporary
worktree) and this tree run side by side, at the same time, ``--repeats`` times; each
tree first runs once briefly so that Numba's on-disk cache is warm for both. Printed:
every run, the medians, their ratio, and the load average (the machine is shared).

    python benchmarks/bench_live_cpu.py [--before e6cbc65] [--repeats 3] [--seconds 120]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[1]
RECORDING = "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_001500.wav"
OFFSET_S = 460  # upcalls at 469, 473, 479, 497, 502, 504, 528, 541 and 543 s
RATE = 96000
CHANNELS = 8


def shared_dir() -> Path:
    return Path(os.environ.get("PAMLIVE_SHARED", REPO.parent / "shared"))


def make_audio(path: Path, seconds: float) -> None:
    """The recording from OFFSET_S, resampled to 96 kHz, on 8 channels (gains 1..1.44)."""
    audio, rate = sf.read(shared_dir() / RECORDING, dtype="float64")
    start = OFFSET_S * rate
    mono = resample_poly(audio[start : start + round(seconds * rate)], RATE // rate, 1)
    gains = 1.0 + np.arange(CHANNELS) / 16
    sf.write(path, (mono[:, None] * gains).astype(np.float32), RATE, subtype="PCM_16")


def narw_config(tree: Path) -> dict[str, Any]:
    """The tree's shipped right whale configuration (its location moved over time)."""
    for rel in ("pamlive/configs/narw.toml", "configs/narw.toml"):
        if (tree / rel).is_file():
            return tomllib.loads((tree / rel).read_text())
    raise SystemExit(f"{tree}: no narw.toml")


def toml(config: Mapping[str, Any]) -> str:
    """Just enough TOML for a config: scalars, lists of scalars, one level of tables."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for name, table in config.items():
        if isinstance(table, dict):
            lines += [f"[{name}]"] + [f"{k} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def write_config(tree: Path, work: Path, name: str, audio: Path) -> Path:
    config = narw_config(tree)
    config["station"] = f"bench-{name}"
    config["data_dir"] = str(work / f"data-{name}")
    config["source"] = {"kind": "replay", "files": [str(audio)], "speed": 1.0}
    config["alerts"] = {**config.get("alerts", {}), "publish": f"ipc://{work}/{name}-pub",
                        "replay": f"ipc://{work}/{name}-replay"}
    path = work / f"{name}.toml"
    path.write_text(toml(config))
    return path


def run(tree: Path, config: Path, duration: float) -> subprocess.Popen[bytes]:
    """``pamlive run`` of ``tree`` on a fresh data folder (no clips from earlier runs)."""
    data = Path(tomllib.loads(config.read_text())["data_dir"])
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with open(config.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pamlive", "run", "-c", str(config), "--headless",
             "--duration", str(duration)],
            cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)


def measure(procs: dict[str, subprocess.Popen[bytes]], work: Path) -> dict[str, float]:
    """CPU % of one core (user + sys over wall) of each process, waited for together."""
    started = time.monotonic()
    cpu: dict[str, float] = {}
    by_pid = {p.pid: name for name, p in procs.items()}
    while by_pid:
        pid, status, usage = os.wait4(-1, 0)
        name = by_pid.pop(pid, None)
        if name is None:
            continue
        wall = time.monotonic() - started
        procs[name].returncode = os.waitstatus_to_exitcode(status)
        if status != 0:
            tail = (work / f"{name}.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"{name}: pamlive run failed (status {status}):\n{tail}")
        cpu[name] = 100.0 * (usage.ru_utime + usage.ru_stime) / wall
    return cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="e6cbc65", help="git ref of the 'before' tree")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=120.0, help="audio replayed per run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pamlive-cpu-", dir="/tmp") as tmp:
        work = Path(tmp)
        audio = work / "narw_8ch_96k.wav"
        make_audio(audio, args.seconds)
        before = work / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q",
                        str(before), args.before], check=True)
        try:
            trees = {"before": before, "after": REPO}
            configs = {n: write_config(t, work, n, audio) for n, t in trees.items()}
            measure({n: run(trees[n], configs[n], 5.0) for n in trees}, work)  # warm the caches
            print(f"load average at start: {os.getloadavg()}")
            results: dict[str, list[float]] = {n: [] for n in trees}
            for i in range(args.repeats):
                # both at once: the same machine load for both; +10 s lets the file end it
                got = measure({n: run(trees[n], configs[n], args.seconds + 10) for n in trees},
                              work)
                for n, v in got.items():
                    results[n].append(v)
                print(f"run {i + 1}: before {got['before']:.1f} %, after {got['after']:.1f} % "
                      f"of one core; load average {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(before)], check=False)
    b, a = (statistics.median(results[n]) for n in ("before", "after"))
    print(f"8 ch x 96 kHz, builtin:narw defaults, {args.seconds:.0f} s replayed at real time, "
          f"median of {args.repeats}: before ({args.before}) {b:.1f} %, after {a:.1f} % of one "
          f"core (user+sys over wall); after/before {a / b:.2f}")


if __name__ == "__main__":
    main()
