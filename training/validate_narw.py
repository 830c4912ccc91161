"""Behaviour off the training day: the unlabelled DCLDE recordings of other days.

    python training/validate_narw.py [--model DIR] [--hop 0.25] [--threshold T]

Runs the real ``pamlive analyze`` over ``../shared/data/narw-dclde2013/unlabelled``
and reports, per file: detections per hour; how many the teacher confirms (a Koogu
NARW clip scoring >= 0.5 overlaps the detection) or disputes; the teacher-sure calls
(Koogu pseudo-calls, ``narw_data.pseudo_calls``) found. Writes a contact sheet PNG with
the spectrogram of every detection for a person to check. The teacher is no ground
truth: a disputed detection may be a call Koogu misses, a confirmed one may be a shared
mistake -- the contact sheet is the check.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from narw_data import SAMPLE_RATE, UNLABELLED_FILES, UNLABELLED_SUBDIR, pseudo_calls
from narw_teachers import DEFAULT_CACHE, cached_ketos, cached_koogu

from pamlive.analyze import analyze_files
from pamlive.evaluate import Event, load_tables
from pamlive.inference.package import ModelPackage, load_model_package

REPO = Path(__file__).resolve().parents[1]
CLASS = "right_whale"
CONFIRM = 0.5


def teacher_max(t: np.ndarray, s: np.ndarray, det: Event, half: float = 1.125) -> float:
    """Highest teacher score of a clip (centres ``t``, ``2 * half`` s long; Koogu 2.25 s,
    Ketos 3 s) overlapping the detection."""
    near = s[(t + half > det.start) & (t - half < det.end)]
    return float(near.max()) if len(near) else 0.0


def contact_sheet(items: list[tuple[Path, Event, float]], path: Path, title: str) -> None:
    """One spectrogram (5 s, 0-500 Hz) per detection, the detection boxed in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    cols = 8
    rows = max(1, math.ceil(len(items) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (wav, det, koogu) in zip(axes.flat, items, strict=False):
        mid = (det.start + det.end) / 2
        t0 = max(mid - 2.5, 0.0)
        x, rate = sf.read(str(wav), start=int(t0 * SAMPLE_RATE), frames=5 * SAMPLE_RATE,
                          dtype="float32")
        f, t, sxx = spectrogram(x, rate, nperseg=256, noverlap=224)
        db = 10 * np.log10(sxx + 1e-12)
        ax.pcolormesh(t + t0, f, db, shading="auto", vmin=np.quantile(db, 0.2),
                      vmax=db.max())
        ax.axvspan(det.start, det.end, fill=False, ec="r", lw=1.2)
        ax.set(xlim=(t0, t0 + 5), ylim=(0, 400))
        ax.set_title(f"{wav.stem[10:17]} {det.start:.0f}s s={det.score:.2f} K={koogu:.2f}",
                     fontsize=7, color="k" if koogu >= CONFIRM else "r")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency

    # 64-colour palette: a third of the bytes, still enough to tell an upcall
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def detections(package: ModelPackage, wavs: list[Path], hop: float, thr: float,
               max_merge: int) -> dict[str, list[Event]]:
    """``pamlive analyze`` detections by file stem."""
    with tempfile.TemporaryDirectory() as tmp:
        result = analyze_files(wavs, package, Path(tmp), hop_s=hop, max_merge=max_merge,
                               thresholds={**package.thresholds, CLASS: thr}, progress=False)
        if result.failed:
            raise SystemExit(f"analysis failed: {result.failed[0].error}")
        return load_tables([Path(tmp)], CLASS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--model", default=str(REPO / "pamlive/models/narw"))
    p.add_argument("--hop", type=float, default=0.5)
    p.add_argument("--max-merge", type=int, default=10)
    p.add_argument("--threshold", type=float, help="default: the package's")
    p.add_argument("--sweep", type=float, nargs="*", default=[],
                   help="also print detections and disputed ones per hour at these thresholds")
    p.add_argument("--png", type=Path, default=REPO / "pamlive/models/narw/unlabelled_days.png")
    args = p.parse_args(argv)
    package = load_model_package(args.model)
    thr = args.threshold or package.thresholds[CLASS]
    wavs = [args.shared / UNLABELLED_SUBDIR / f for f in UNLABELLED_FILES]
    koogu = {w.stem: cached_koogu(args.shared, w) for w in wavs}
    hours_all = sum(sf.info(str(w)).duration for w in wavs) / 3600
    if args.sweep:
        print(f"sweep, hop {args.hop} s, max_merge {args.max_merge}, {hours_all:.2f} h:")
        print("threshold  detections/h  disputed/h  teacher-sure calls found")
        for t in args.sweep:
            tables = detections(package, wavs, args.hop, t, args.max_merge)
            n = sum(len(v) for v in tables.values())
            bad = sum(teacher_max(*koogu[k], d) < CONFIRM for k, v in tables.items() for d in v)
            found = sum(any(d.start < c.end and d.end > c.start for d in tables.get(k, []))
                        for k, (kt, ks) in koogu.items() for c in pseudo_calls(kt, ks))
            print(f"{t:9.3f} {n / hours_all:13.0f} {bad / hours_all:11.1f} {found:8d}")
    tables = detections(package, wavs, args.hop, thr, args.max_merge)
    items = []
    tot_h = tot_d = tot_conf = tot_calls = tot_found = 0.0
    print(f"model {package.name} {package.version}, threshold {thr}, hop {args.hop} s, "
          f"max_merge {args.max_merge}")
    for wav in wavs:
        t, s = koogu[wav.stem]
        hours = sf.info(str(wav)).duration / 3600
        dets = tables.get(wav.stem, [])
        km = [teacher_max(t, s, d) for d in dets]
        conf = sum(k >= CONFIRM for k in km)
        calls = pseudo_calls(t, s)
        found = sum(any(d.start < c.end and d.end > c.start for d in dets) for c in calls)
        print(f"{wav.stem}: {len(dets)} detections in {hours:.2f} h ({len(dets) / hours:.0f}/h); "
              f"teacher confirms {conf}, disputes {len(dets) - conf} "
              f"({(len(dets) - conf) / hours:.1f}/h); teacher-sure calls found "
              f"{found}/{len(calls)}")
        if (DEFAULT_CACHE / "ketos-narw").exists():
            kt, ks = cached_ketos(wav)
            ke = [teacher_max(kt, ks, d, 1.5) for d in dets]
            both = sum(a >= CONFIRM and b >= CONFIRM for a, b in zip(km, ke, strict=True))
            print(f"  Ketos >= {CONFIRM} on {sum(b >= CONFIRM for b in ke)} of them; both "
                  f"teachers on {both}; Ketos windows >= {CONFIRM}: "
                  f"{int((ks >= CONFIRM).sum())} of {len(ks)}")
        items += [(wav, d, k) for d, k in zip(dets, km, strict=True)]
        tot_h += hours
        tot_d += len(dets)
        tot_conf += conf
        tot_calls += len(calls)
        tot_found += found
    print(f"all: {tot_d:.0f} detections ({tot_d / tot_h:.0f}/h), disputed "
          f"{(tot_d - tot_conf) / tot_h:.1f}/h, teacher-sure calls found "
          f"{tot_found:.0f}/{tot_calls:.0f}")
    items.sort(key=lambda i: i[2])  # disputed first
    contact_sheet(items, args.png, f"{package.name} {package.version} on unlabelled days, "
                  f"thr {thr}, hop {args.hop} s: every detection (red title: Koogu < {CONFIRM})")
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
