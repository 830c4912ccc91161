"""The bat front end, before and after: CPU of the live windowing thread's work on the
4-channel 384 kHz stream of ``bench_bats.py`` (c), one tree against another, side by side.

What is timed is what the windowing thread does with an event model: the event windower
(resampling 384 -> 256 kHz, then per window batdetect2's front end: pad, |STFT|, crop,
PCEN, denoise) over the stream in 0.1 s blocks, at the hop of ``configs/bats.toml``
(2.5 s) or ``--hop``. Also each part alone: the resampler over the stream, and each
transform of the chain over the same windows. Each measurement runs in its own process
(``process_time`` of the timed part only; one warm-up pass first, so Numba's compilation
is not counted), the two trees alternating, ``--repeats`` times; printed: the medians as
shares of a core at real time and the ratio before / after. The "before" tree is a git
ref (default 1caf2a8, main before this work), exported with ``git archive``; the windows'
features of both trees are compared too (bit-equal or not, and the largest difference).

    python benchmarks/bench_bat_frontend.py [--before 1caf2a8] [--repeats 5] [--hop S]
        [--package DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import soundfile as sf
from bench_bats import make_live_file, package_dir

REPO = Path(__file__).resolve().parents[1]
BLOCK_S = 0.1


def child(args: argparse.Namespace) -> None:
    """In the tree on ``PYTHONPATH``: time the front end; print JSON, save the features."""
    from pamlive.dsp.chain import TransformChain, TransformSpec
    from pamlive.dsp.features import Features
    from pamlive.windows import EventWindower

    meta = json.loads((Path(args.package) / "pamlive-model.json").read_text())
    specs = [TransformSpec(t["name"], t.get("params", {})) for t in meta["transforms"]]
    audio, rate = sf.read(args.audio, dtype="float32")
    channels, block = audio.shape[1], round(rate * BLOCK_S)

    def windows(x: np.ndarray) -> tuple[list, int]:
        """The windows of ``x``, and their hop (samples at the chain's rate)."""
        windower = EventWindower(TransformChain(specs), rate, channels, meta["segment_s"],
                                 args.hop)
        out = []
        for i in range(0, x.shape[0], block):
            out += windower.push(x[i:i + block])
        return out + windower.flush(), windower.hop

    def resampled(x: np.ndarray) -> np.ndarray:
        resampler = TransformChain(specs).resampler(rate, channels)
        parts = [resampler.process(x[i:i + block]) for i in range(0, x.shape[0], block)]
        return np.concatenate([*parts, resampler.flush()])

    windows(audio[: 4 * rate])  # warm-up: Numba's kernels compiled or loaded
    t = time.process_time()
    got, hop = windows(audio)
    cpu = {"front end (windowing thread)": time.process_time() - t}
    t = time.process_time()
    stream = resampled(audio)
    cpu["  resampling 384 -> 256 kHz"] = time.process_time() - t
    chain = TransformChain(specs)
    segment = round(meta["segment_s"] * chain.sample_rate)
    for start in range(0, stream.shape[0] - segment + 1, hop):
        f = Features(np.ascontiguousarray(stream[start:start + segment].T), chain.sample_rate)
        for step in chain.steps:
            t = time.process_time()
            f = step.run(f)
            name = f"  {step.specs[0].name} (each window)"
            cpu[name] = cpu.get(name, 0.0) + time.process_time() - t
    np.save(args.save, np.concatenate([w.features.reshape(-1) for w in got]))
    print(json.dumps({"audio_s": audio.shape[0] / rate, "cpu": cpu}))


def export_tree(ref: str, target: Path) -> Path:
    """The files of git ref ``ref`` (its ``pamlive`` package) in ``target``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "pamlive"],
                             check=True, capture_output=True).stdout
    target.mkdir()
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(target, filter="data")
    return target


def measure(tree: Path, audio: Path, package: Path, hop: float, save: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--child", "--audio", str(audio),
                          "--package", str(package), "--hop", str(hop), "--save", str(save)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def hop_of_config(hop: float | None) -> float:
    if hop is not None:
        return hop
    return float(tomllib.loads((REPO / "pamlive" / "configs" / "bats.toml").read_text())
                 ["model"].get("hop_s", 3.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="1caf2a8", help="git ref to compare with")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hop", type=float, help="window hop (default: configs/bats.toml's)")
    ap.add_argument("--package", help="a converted batdetect2 package (default: convert)")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--audio", help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    hop = hop_of_config(args.hop)
    with tempfile.TemporaryDirectory(prefix="bench-bat-frontend-") as folder:
        tmp = Path(folder)
        package = package_dir(args, tmp)
        audio = make_live_file(tmp, args.channels)
        trees = {f"before ({args.before})": export_tree(args.before, tmp / "before"),
                 "after (this tree)": REPO}
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        saved = [tmp / f"features{i}.npy" for i in range(len(trees))]
        for _ in range(args.repeats):  # alternating: both see the same machine load
            for (name, tree), save in zip(trees.items(), saved, strict=True):
                runs[name].append(measure(tree, audio, package, hop, save))
        features = [np.load(path) for path in saved]
        seconds = runs[next(iter(trees))][0]["audio_s"]
        load = os.getloadavg()
    print(f"\nbat front end: {args.channels} ch x 384 kHz, {seconds:.0f} s of audio, hop "
          f"{hop} s, one thread, medians of {args.repeats} (load average "
          f"{load[0]:.2f}, {load[1]:.2f})")
    names = list(trees)
    print(f"{'% of a core at real time':<40} {names[0]:>18} {names[1]:>18} {'ratio':>7}")
    for part in runs[names[0]][0]["cpu"]:
        share = [100 * statistics.median(r["cpu"][part] for r in runs[n]) / seconds
                 for n in names]
        ratio = f"{share[0] / share[1]:6.2f}x" if share[1] > 0 else "-"
        print(f"{part:<40} {share[0]:17.2f}% {share[1]:17.2f}% {ratio:>7}")
    before, after = features
    same = before.shape == after.shape and np.array_equal(before, after, equal_nan=True)
    diff = float(np.max(np.abs(before - after))) if before.shape == after.shape else np.inf
    print(f"windows' features: {'bit-equal' if same else f'largest difference {diff:.3g}'} "
          f"({after.size} values)")


if __name__ == "__main__":
    main()
