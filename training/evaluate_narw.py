"""Held-out accuracy of the ``narw`` package, measured the way users get detections.

    python training/evaluate_narw.py [--hop 0.25] [--max-merge N]
    python training/evaluate_narw.py --fold 0 --model DIR --png x.png   # a LOO fold

Runs the real ``pamlive analyze`` pipeline (2-s windows at ``--hop``, PAMGuard merge
rule) over the held-out test files (``--fold K``: the K-th leave-one-out pair; 1 is the
shipped split) once per threshold, scores each set of Raven tables with
``pamlive.evaluate`` (event level) and writes the precision-recall picture. Needs
matplotlib (the ``train`` extra), not PyTorch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from narw_data import DATA_SUBDIR, SAMPLE_RATE, leave_one_out

from pamlive.analyze import analyze_files
from pamlive.evaluate import (
    Event,
    Scores,
    format_scores,
    load_tables,
    overlaps,
    read_annotations,
    score_events,
)
from pamlive.inference.package import ModelPackage, load_model_package

REPO = Path(__file__).resolve().parents[1]
SWEEP = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998)
CLASS = "right_whale"


def run(package: ModelPackage, paths: list[Path], annotations: dict, workdir: Path,
        threshold: float | None, hop_s: float = 1.0, max_merge: int = 10,
        ) -> tuple[Scores, dict[str, list[Event]]]:
    """Analyse ``paths`` at ``threshold`` (None: the package default) and score them;
    also returns the detections by file stem."""
    out = workdir / ("default" if threshold is None else f"t{threshold}")
    thresholds = None if threshold is None else {**package.thresholds, CLASS: threshold}
    result = analyze_files(paths, package, out, thresholds=thresholds, progress=False,
                           hop_s=hop_s, max_merge=max_merge)
    if result.failed:
        raise SystemExit(f"analysis failed: {result.failed[0].error}")
    hours = sum(f.duration_s for f in result.files) / 3600
    tables = load_tables([out], CLASS)
    scores = score_events(tables, annotations, hours)
    return replace(scores, threshold=threshold or package.thresholds[CLASS]), tables


def plot(rows: list[Scores], default: Scores, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax1.plot([r.recall for r in rows], [r.precision for r in rows], "o-")
    for r in rows:
        ax1.annotate(f"{r.threshold:g}", (r.recall, r.precision), fontsize=7,
                     textcoords="offset points", xytext=(3, 3))
    ax1.plot(default.recall, default.precision, "r*", ms=14, label="default threshold")
    ax1.set(xlabel="recall (calls found)", ylabel="precision (detections that are calls)",
            title="Held-out precision-recall (event level)", xlim=(0, 1.05), ylim=(0, 1.05))
    ax1.legend(loc="lower left")
    thr = [r.threshold for r in rows]
    ax2.plot(thr, [r.recall for r in rows], "o-", label="recall")
    ax2.set(xlabel="threshold (right_whale score)", ylabel="recall", ylim=(0, 1.05))
    ax3 = ax2.twinx()
    ax3.plot(thr, [r.false_alarms_per_hour for r in rows], "s--", color="C3",
             label="false alarms / h")
    ax3.set_ylabel("false alarms per hour")
    ax2.axvline(default.threshold, color="r", lw=0.8)
    ax2.set_title("Recall and false alarms vs threshold")
    fig.legend(loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)


def plot_false_alarms(tables: dict[str, list[Event]], annotations: dict, root: Path,
                      path: Path, files: tuple[str, ...]) -> None:
    """Spectrograms of the unmatched detections, to see what the detector fired on."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    false = [(stem, d) for stem, dets in tables.items() for d in dets
             if not any(overlaps(d, a) for a in annotations.get(stem, []))]
    if not false:
        return
    audio_of = {Path(f).stem: root / f for f in files}
    fig, axes = plt.subplots(1, len(false), figsize=(3.2 * len(false), 3.0), squeeze=False)
    for ax, (stem, det) in zip(axes[0], false, strict=True):
        mid = (det.start + det.end) / 2
        x, rate = sf.read(str(audio_of[stem]), start=int(max(mid - 2.5, 0) * SAMPLE_RATE),
                          frames=5 * SAMPLE_RATE, dtype="float32")
        f, t, sxx = spectrogram(x, rate, nperseg=256, noverlap=200)
        ax.pcolormesh(t + max(mid - 2.5, 0), f, 10 * np.log10(sxx + 1e-12), shading="auto")
        ax.axvspan(det.start, det.end, fill=False, ec="r", lw=1.5)
        ax.set(ylim=(0, 500), xlabel="s", title=f"{stem[-6:]} {det.start:.0f} s, "
               f"score {det.score:.2f}")
    axes[0][0].set_ylabel("Hz")
    fig.suptitle("Held-out detections with no annotation (default threshold)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--model", default=str(REPO / "pamlive/models/narw"))
    p.add_argument("--png", type=Path, default=REPO / "pamlive/models/narw/pr_curve.png")
    p.add_argument("--fold", type=int, default=1, choices=[0, 1, 2],
                   help="held-out pair of leave_one_out(K); 1 = the shipped test split")
    p.add_argument("--hop", type=float, default=0.5)
    p.add_argument("--max-merge", type=int, default=10)
    p.add_argument("--sweep", type=float, nargs="*", default=SWEEP)
    args = p.parse_args(argv)
    root = args.shared / DATA_SUBDIR
    package = load_model_package(args.model)
    annotations = read_annotations(root / "annotations_train.csv")
    test_files = leave_one_out(args.fold)[1]
    paths = [root / f for f in test_files]
    background = [p for p in paths if p.parent.name == "background"]
    kw = {"hop_s": args.hop, "max_merge": args.max_merge}
    with tempfile.TemporaryDirectory() as tmp:
        default, default_tables = run(package, paths, annotations, Path(tmp), None, **kw)
        default_bg, _ = run(package, background, annotations, Path(tmp) / "bg", None, **kw)
        rows = [run(package, paths, annotations, Path(tmp), t, **kw)[0] for t in args.sweep]
    print(f"model {package.name} {package.version}, hop {args.hop} s, max_merge "
          f"{args.max_merge}")
    print(f"held-out files: {', '.join(test_files)} ({default.audio_hours:.2f} h)")
    print("package default threshold, all held-out files:")
    print(format_scores([default]))
    print(f"package default threshold, background file only ({default_bg.audio_hours:.2f} h):")
    print(format_scores([default_bg]))
    print("sweep (each row a full `pamlive analyze` run at that threshold):")
    print(format_scores(rows))
    plot(rows, default, args.png)
    fa_png = args.png.with_name("heldout_false_alarms.png")
    plot_false_alarms(default_tables, annotations, root, fa_png, test_files)
    print(f"wrote {args.png} and {fa_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
