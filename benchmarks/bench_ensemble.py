"""Is an ensemble better? Accuracy and CPU of single models and fused ensembles, one run.

Every setup runs the real ``pamlive analyze`` path (members' windowers, ONNX, alignment,
fusion, PAMGuard merge rule, Raven tables) and is scored by ``pamlive.evaluate`` (event
level, as ``pamlive evaluate``) on the labelled files held out from the built-in model's
training (``NOPP6_EST_20090328_001500`` + ``GSC_2000-05-19_00-30-00``: 24 calls, 0.5 h).
Also printed: detections per hour on the two unlabelled recordings of *other days*
(no annotations: a high rate there is mostly false alarms, the day-shift problem).

Accuracy runs share one score cache per member (a window's features -> its scores), so a
threshold grid costs one inference pass per model; the CPU figures are measured apart,
without the cache: process CPU seconds per channel-hour of audio, medians of
``--repeats`` interleaved runs, threads = 1.

    python benchmarks/bench_ensemble.py [--koogu /work/scratch/koogu-narw-pkg] [--repeats 3]
                                        [--narw builtin:narw] [--part all|analyze|live]

``--part live``: the live monitor's cost instead, ``pamlive run --headless`` playing the
held-out files at ``--speed`` times real time through the narw model alone and through
the ensemble (narw 1 s hop + Koogu 0.5 s): the process's CPU seconds (all threads,
start-up included) per channel-hour of audio, and the members' share of the inference
thread's CPU from the last health message (docs/ensembles.md, "In the live monitor").

The Koogu package is third-party (``pamlive import-model
../shared/models/koogu-narw/koogu_narw_model``); it cannot ship in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pamlive.analyze import analyze_files
from pamlive.config import FusionConfig, MemberConfig, ModelConfig
from pamlive.ensemble import Ensemble, load_ensemble
from pamlive.evaluate import load_tables, read_annotations, score_events
from pamlive.inference.classifier import Classifier

REPO = Path(__file__).resolve().parents[1]
DATA = Path("data/narw-dclde2013")
HELD_OUT = ["train/narw/NOPP6_EST_20090328_001500.wav",
            "train/background/GSC_2000-05-19_00-30-00.wav"]
OTHER_DAYS = ["unlabelled/NOPP6_EST_20090329_121500.wav",
              "unlabelled/NOPP6_EST_20090331_220000_CH10.wav"]
CLASS = "right_whale"


def shared_dir() -> Path:
    return Path(os.environ.get("PAMLIVE_SHARED", REPO.parent / "shared"))


class CachedClassifier:
    """A classifier that scores each distinct window once (accuracy sweeps only)."""

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner
        self.package = inner.package
        self.cache: dict[bytes, np.ndarray] = {}

    def predict(self, features: np.ndarray) -> np.ndarray:
        keys = [hashlib.blake2b(f.tobytes(), digest_size=16).digest() for f in features]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            for i, s in zip(todo, self.inner.predict(features[todo]), strict=True):
                self.cache[keys[i]] = s
        return np.stack([self.cache[k] for k in keys])


NARW = {"path": "builtin:narw"}  # --narw: e.g. a retrained package to compare


def narw(threshold: float, hop_s: float = 1.0) -> MemberConfig:
    return MemberConfig(NARW["path"], hop_s, {CLASS: threshold})


def koogu(path: str, threshold: float, hop_s: float = 0.5) -> MemberConfig:
    return MemberConfig(path, hop_s, {"NARW": threshold}, {CLASS: "NARW"})


def one_cfg(m: MemberConfig) -> ModelConfig:
    return ModelConfig(members=[m], fusion={CLASS: FusionConfig("all")})


def setups(kpath: str) -> dict[str, ModelConfig]:
    """Name -> model config; a single model is an ensemble of one (same detections)."""
    one = one_cfg

    def two(rule: FusionConfig, n: MemberConfig, k: MemberConfig) -> ModelConfig:
        return ModelConfig(members=[n, k], fusion={CLASS: rule})

    out = {"narw 0.9 (default, hop 1 s)": one(narw(0.9)),
           "narw 0.8": one(narw(0.8)),
           "narw 0.9 hop 0.5 s": one(narw(0.9, 0.5))}
    for t in (0.95, 0.98, 0.995, 0.999):
        out[f"koogu {t}"] = one(koogu(kpath, t))
    for tn, tk in ((0.5, 0.95), (0.5, 0.98), (0.8, 0.95), (0.8, 0.98), (0.9, 0.95),
                   (0.9, 0.98), (0.8, 0.995)):
        out[f"all: narw {tn} & koogu {tk}"] = two(FusionConfig("all"), narw(tn), koogu(kpath, tk))
    out["all: narw 0.8 & koogu 0.98, narw hop 0.5"] = two(
        FusionConfig("all"), narw(0.8, 0.5), koogu(kpath, 0.98))
    out["all: narw 0.8 & koogu 0.98, koogu hop 1"] = two(
        FusionConfig("all"), narw(0.8), koogu(kpath, 0.98, 1.0))
    for t in (0.7, 0.8, 0.9, 0.95):
        out[f"mean >= {t}"] = two(FusionConfig("mean", threshold=t), narw(0.9), koogu(kpath, 0.5))
    for tn, tk in ((0.95, 0.999), (0.98, 0.999), (0.9, 0.999)):
        out[f"1 of 2: narw {tn} | koogu {tk}"] = two(
            FusionConfig("k_of_n", k=1), narw(tn), koogu(kpath, tk))
    return out


def cached(ensemble: Ensemble, caches: dict[str, CachedClassifier]) -> Ensemble:
    for m in ensemble.members:
        key = str(m.package.path)
        m.classifier = caches.setdefault(key, CachedClassifier(m.classifier))  # type: ignore
    return ensemble


def accuracy(configs: dict[str, ModelConfig], shared: Path, work: Path) -> None:
    annotations = read_annotations(shared / DATA / "train/annotations_train.csv")
    caches: dict[str, CachedClassifier] = {}
    print(f"{'setup':44} {'recall':>6} {'found':>5} {'FA':>3} {'FA/h':>6} "
          f"{'other days dets/h':>17}")
    for i, (name, cfg) in enumerate(configs.items()):
        ensemble = cached(load_ensemble(cfg), caches)
        held = analyze_files([shared / DATA / p for p in HELD_OUT], ensemble,
                             work / f"h{i}", progress=False)
        hours = sum(f.duration_s for f in held.files) / 3600
        s = score_events(load_tables([work / f"h{i}"], CLASS), annotations, hours)
        other = analyze_files([shared / DATA / p for p in OTHER_DAYS], ensemble,
                              work / f"o{i}", progress=False)
        other_h = sum(f.duration_s for f in other.files) / 3600
        other_rate = sum(len(f.detections) for f in other.files) / other_h
        print(f"{name:44} {s.recall:6.3f} {s.matched_annotations:2d}/{s.annotations:2d} "
              f"{s.false_alarms:3d} {s.false_alarms_per_hour:6.1f} {other_rate:17.1f}")


def cpu_cost(kpath: str, shared: Path, work: Path, repeats: int) -> None:
    """CPU seconds per channel-hour, without the cache, setups interleaved per repeat."""
    runs = {"narw alone (default: hop 1 s)": one_cfg(narw(0.9)),
            "koogu alone (hop 0.5 s)": one_cfg(koogu(kpath, 0.98)),
            "ensemble narw (1 s) + koogu (0.5 s)": ModelConfig(
                members=[narw(0.8), koogu(kpath, 0.98)], fusion={CLASS: FusionConfig("all")}),
            "ensemble narw (0.5 s) + koogu (0.5 s)": ModelConfig(
                members=[narw(0.8, 0.5), koogu(kpath, 0.98)],
                fusion={CLASS: FusionConfig("all")}),
            "ensemble narw (1 s) + koogu (1 s)": ModelConfig(
                members=[narw(0.8), koogu(kpath, 0.98, 1.0)],
                fusion={CLASS: FusionConfig("all")})}
    paths = [shared / DATA / p for p in HELD_OUT]
    times: dict[str, list[float]] = {k: [] for k in runs}
    hours = 0.0
    for r in range(repeats):
        for name, cfg in runs.items():
            ensemble = load_ensemble(cfg)
            t0 = time.process_time()
            result = analyze_files(paths, ensemble, work / f"cpu{r}", progress=False)
            times[name].append(time.process_time() - t0)
            hours = sum(f.duration_s for f in result.files) / 3600
    base = statistics.median(times["narw alone (default: hop 1 s)"]) / hours
    print(f"\nCPU per channel-hour ({hours:.2f} h of audio, median of {repeats}, 1 thread)")
    for name, ts in times.items():
        per_h = statistics.median(ts) / hours
        print(f"{name:40} {per_h:7.2f} s  x{per_h / base:5.2f}  "
              f"({3600 / per_h:,.0f}x real time)")


def live_toml(model: str, files: list[Path], work: Path, speed: float) -> str:
    """A run config: the held-out files played at ``speed``, its own data and bus."""
    return (f'data_dir = "{work / "data"}"\n[source]\nkind = "replay"\n'
            f"files = {json.dumps([str(f) for f in files])}\nspeed = {speed}\n"
            f'[alerts]\npublish = "ipc://{work}/pub"\nreplay = "ipc://{work}/replay"\n{model}')


def live_cost(kpath: str, shared: Path, work: Path, repeats: int, speed: float) -> None:
    """Process CPU per channel-hour of ``pamlive run``, setups interleaved per repeat: with
    start-up, and steady (a 1 s run's CPU and audio subtracted); members' CPU shares from
    the last health message."""
    models = {"narw alone (hop 1 s)": f'[model]\npath = "{NARW["path"]}"\nhop_s = 1.0\n',
              "ensemble narw (1 s) + koogu (0.5 s)": (
                  '[model]\nhop_s = 1.0\n[[model.members]]\n'
                  f'path = "{NARW["path"]}"\nthresholds = {{ {CLASS} = 0.8 }}\n'
                  f'[[model.members]]\npath = "{kpath}"\nhop_s = 0.5\n'
                  'thresholds = { NARW = 0.98 }\nclasses = { right_whale = "NARW" }\n'
                  f'[model.fusion]\n{CLASS} = {{ rule = "all" }}\n')}
    files = [shared / DATA / p for p in HELD_OUT]
    whole: dict[str, list[float]] = {k: [] for k in models}
    steady: dict[str, list[float]] = {k: [] for k in models}
    shares: dict[str, str] = {}
    hours = 0.0
    for r in range(repeats):
        for i, (name, model) in enumerate(models.items()):
            runs = []
            for part, flags in (("all", []), ("start", ["--duration", "1"])):
                run_dir = work / f"live{r}-{i}-{part}"
                run_dir.mkdir()
                (run_dir / "run.toml").write_text(live_toml(model, files, run_dir, speed),
                                                  encoding="utf-8")
                runs.append(run_live(run_dir, flags))
            (cpu, health), (cpu0, health0) = runs
            hours = health["stream_time_s"] / 3600
            whole[name].append(cpu / hours)
            steady[name].append((cpu - cpu0) / (hours - health0["stream_time_s"] / 3600))
            members = (health.get("ensemble") or {}).get("members") or []
            shares[name] = ", ".join(f"{m['name']} {100 * m['cpu_share']:.0f} % "
                                     f"({m['cpu_s'] / hours:.2f} s), latency median "
                                     f"{m['latency_ms']['median']:.0f} ms" for m in members)
    print(f"\nLive CPU per channel-hour ({hours:.2f} h played at {speed:g}x, process CPU, "
          f"median of {repeats}, 1 thread): with start-up, steady; members' inference")
    for name in models:
        print(f"{name:36} {statistics.median(whole[name]):6.2f} s "
              f"{statistics.median(steady[name]):6.2f} s  {shares[name]}")


def run_live(run_dir: Path, flags: list[str]) -> tuple[float, dict]:
    """``pamlive run`` on ``run_dir/run.toml``: its CPU seconds and its last health."""
    import zmq

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.subscribe(b"health")
    sub.connect(f"ipc://{run_dir}/pub")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-m", "pamlive", "run", "-c",
                             str(run_dir / "run.toml"), "--headless", *flags],
                            stderr=subprocess.DEVNULL)
    health: dict = {}
    while proc.poll() is None:
        if sub.poll(200):
            health = json.loads(sub.recv_multipart()[1])
    while sub.poll(500):  # the goodbye health
        health = json.loads(sub.recv_multipart()[1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sub.close()
    ctx.term()
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, health


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--koogu", default="/work/scratch/koogu-narw-pkg",
                   help="the imported Koogu NARW package")
    p.add_argument("--narw", default="builtin:narw",
                   help="the right whale package with a right_whale class (default: built-in)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--part", choices=("all", "analyze", "live"), default="all")
    p.add_argument("--speed", type=float, default=60.0, help="live: times real time")
    args = p.parse_args()
    NARW["path"] = args.narw
    shared = shared_dir()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("all", "analyze"):
            accuracy(setups(args.koogu), shared, Path(tmp))
            cpu_cost(args.koogu, shared, Path(tmp), args.repeats)
        if args.part in ("all", "live"):
            live_cost(args.koogu, shared, Path(tmp), args.repeats, args.speed)


if __name__ == "__main__":
    main()
