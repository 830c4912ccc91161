"""CPU per channel-hour of the right whale model: the shipped package vs an earlier one.

Run: ``python benchmarks/bench_narw_models.py`` (one core: BLAS/OpenMP/ONNX threads
pinned to 1; reports process CPU time). Both packages run the real ``pamlive analyze``
pipeline (file read, streaming resampler, transform chain, ONNX Runtime, merge rule,
Raven table) over the same 15-min DCLDE recording from ``../shared``, alternating, at
each hop; it prints the median CPU seconds per channel-hour of each and their ratio.
The baseline is the package at git revision ``--baseline-rev`` (default: the v1 model,
commit e6cbc65), extracted to a temporary folder.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import soundfile as sf  # noqa: E402

from pamlive.analyze import analyze_files  # noqa: E402
from pamlive.inference.package import ModelPackage, load_model_package  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "pamlive/models/narw"
RECORDING = "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_001500.wav"


def baseline_package(rev: str, into: Path) -> ModelPackage:
    """The ``narw`` package as committed at ``rev``."""
    for name in ("model.onnx", "pamlive-model.json"):
        blob = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{PACKAGE}/{name}"],
                              capture_output=True, check=True).stdout
        (into / name).write_bytes(blob)
    return load_model_package(into)


def cpu_seconds(package: ModelPackage, wav: Path, hop: float, out: Path) -> float:
    t0 = time.process_time()
    result = analyze_files([wav], package, out, hop_s=hop, progress=False, threads=1)
    if result.failed:
        raise SystemExit(f"analysis failed: {result.failed[0].error}")
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--baseline-rev", default="e6cbc65")
    p.add_argument("--hops", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    wav = args.shared / RECORDING
    hours = sf.info(str(wav)).duration / 3600
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = Path(tmp) / "baseline"
        base_dir.mkdir()
        models = {"baseline": baseline_package(args.baseline_rev, base_dir),
                  "shipped": load_model_package(REPO / PACKAGE)}
        for m in models.values():  # warm-up: numba compilation, ONNX session
            cpu_seconds(m, wav, 1.0, Path(tmp) / "warm")
        print(f"{wav.name}, {hours * 60:.0f} min, 1 channel; CPU s per channel-hour "
              f"(median of {args.repeats})")
        print(f"{'hop s':>6} {'baseline':>22} {'shipped':>22} {'shipped/baseline':>17}")
        for hop in args.hops:
            runs: dict[str, list[float]] = {k: [] for k in models}
            for _ in range(args.repeats):
                for k, m in models.items():
                    runs[k].append(cpu_seconds(m, wav, hop, Path(tmp) / k) / hours)
            med = {k: statistics.median(v) for k, v in runs.items()}
            names = {k: f"{m.name} {m.version}" for k, m in models.items()}
            print(f"{hop:6.2f} {med['baseline']:10.1f} ({names['baseline']:>10}) "
                  f"{med['shipped']:10.1f} ({names['shipped']:>10}) "
                  f"{med['shipped'] / med['baseline']:17.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
