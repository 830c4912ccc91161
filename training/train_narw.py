"""Train the right whale upcall detector and write the ``narw`` model package.

    python training/train_narw.py --split final --out pamlive/models/narw

``--split dev-a`` / ``dev-b`` train on one half of the training files and report on
the other half (two-fold cross-validation: how the recipe was chosen). ``--split
final`` trains on all training files, exports ``model.onnx`` + ``pamlive-model.json``
and prints a window-scoring preview on the held-out test files; the reported figures
come from ``training/evaluate_narw.py``, which runs the real ``pamlive analyze``.
Needs the ``train`` extra (PyTorch). Fixed seeds and 2 torch threads: the same command
reproduces the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from narw_data import (
    DATA_SUBDIR,
    DEV_TRAIN_FILES,
    DEV_VALID_FILES,
    MIN_CALL_FRACTION,
    SAMPLE_RATE,
    SEGMENT,
    TEST_FILES,
    TRAIN_FILES,
    UNLABELLED_FILES,
    UNLABELLED_SUBDIR,
    Recording,
    WindowSampler,
    feature_chain,
    file_windows,
    leave_one_out,
    load_recordings,
    load_unlabelled,
)
from narw_net import UpcallNet
from narw_teachers import cached_koogu, cached_v1

from pamlive.detection import WindowMerger
from pamlive.dsp.chain import TransformChain
from pamlive.evaluate import Event, format_scores, score_events

REPO = Path(__file__).resolve().parents[1]
# Chosen from the held-out curves at the default 0.5-s hop, on the calibrated scale
# (see pamlive/models/narw/README.md).
DEFAULT_THRESHOLD = 0.999
MODEL_VERSION = "2.0.0"
CLASS_NAMES = ["noise", "right_whale"]


def set_determinism(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def features(chain: TransformChain, segments: np.ndarray) -> torch.Tensor:
    """(n, 4000) audio -> (n, 40, 40, 1) model input."""
    return torch.from_numpy(chain.apply(segments)[..., None])


def train(
    recordings: list[Recording], chain: TransformChain, args: argparse.Namespace
) -> UpcallNet:
    rng = np.random.default_rng(args.seed)
    sampler = WindowSampler(recordings, rng, args.noise_mix_max, args.hard_frac, args.speed)
    print(f"{len(sampler.calls)} calls, hard-negative pool "
          f"{sum(len(s) for _, s in sampler.hard)} offsets", flush=True)
    model = UpcallNet(tuple(args.widths), args.dropout, not args.linear_input, args.bg_sub)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs, pct_start=0.2
    )
    loss_fn = nn.CrossEntropyLoss()
    n_calls = len(sampler.calls)
    for epoch in range(args.epochs):
        x, y = sampler.draw(args.per_call, args.neg_ratio * args.per_call * n_calls)
        xf, yt = features(chain, x), torch.from_numpy(y)
        order = torch.from_numpy(rng.permutation(len(yt)))
        model.train()
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            opt.zero_grad()
            loss = loss_fn(model.logits(xf[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        print(f"epoch {epoch + 1:3d}  loss {total / len(order):.4f}", flush=True)
    model.eval()
    return model


@torch.no_grad()
def fit_temperature(model: UpcallNet, chain: TransformChain, recordings: list[Recording],
                    hop_s: float = 0.25) -> float:
    """Temperature scaling on held-out recordings: the T that minimises the log loss of
    ``softmax(logits / T)`` over windows holding >= ``MIN_CALL_FRACTION`` of a call
    (positives) and windows clear of every call and of teacher activity (negatives);
    windows in between are left out. One number, so the ranking (and every curve)
    stays; only what a score means moves."""
    from scipy.optimize import minimize_scalar

    zs, ys = [], []
    for rec in recordings:
        segs, starts = file_windows(rec.audio, hop_s)
        lg = model.logits(features(chain, segs)).numpy()
        z = (lg[:, 1] - lg[:, 0]).astype(np.float64)
        pos = np.zeros(len(starts), bool)
        for c in rec.calls:
            inside = np.minimum(starts + 2.0, c.end) - np.maximum(starts, c.start)
            pos |= inside >= MIN_CALL_FRACTION * min(c.end - c.start, 2.0)
        neg = np.isin(np.round(starts * SAMPLE_RATE).astype(np.int64), rec.noise_starts())
        zs += [z[pos], z[neg & ~pos]]
        ys += [np.ones(pos.sum()), np.zeros((neg & ~pos).sum())]
    z, y = np.concatenate(zs), np.concatenate(ys)

    def nll(log_t: float) -> float:
        q = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, q) - y * q))

    best = minimize_scalar(nll, bounds=(-3, 3), method="bounded")
    print(f"temperature fit on {int(y.sum())} call and {int(len(y) - y.sum())} noise windows: "
          f"T = {np.exp(best.x):.3f} (log loss {nll(0.0):.4f} -> {best.fun:.4f})")
    return float(np.exp(best.x))


def attach_teachers(shared: Path, recordings: list[Recording], root: Path) -> None:
    """Give each recording its Koogu scores (negatives keep clear of teacher activity)
    and v1's scores (hard negatives)."""
    for rec in recordings:
        wav = root / rec.name
        rec.teacher_t, rec.teacher_s = cached_koogu(shared, wav)
        rec.miner_t, rec.miner_s = cached_v1(wav)


def teacher_preview(model: UpcallNet, chain: TransformChain, rec: Recording,
                    thr: float = 0.9) -> str:
    """On an unlabelled day: detections per hour, share the teacher confirms (a Koogu
    clip >= 0.5 overlapping), and teacher-sure calls found."""
    segs, starts = file_windows(rec.audio)
    with torch.no_grad():
        scores = model(features(chain, segs))[:, 1].numpy()
    dets = merged_detections(starts, scores, thr)
    hours = len(rec.audio) / SAMPLE_RATE / 3600
    conf = sum(bool(np.any(rec.teacher_s[(rec.teacher_t > d.start - 0.6)
                                         & (rec.teacher_t < d.end + 0.6)] >= 0.5)) for d in dets)
    found = sum(any(d.start < c.end and d.end > c.start for d in dets) for c in rec.calls)
    return (f"{rec.stem} @ {thr}: {len(dets)} detections ({len(dets) / hours:.0f}/h), "
            f"{conf} teacher-confirmed, {len(dets) - conf} disputed "
            f"({(len(dets) - conf) / hours:.0f}/h); teacher-sure calls found "
            f"{found}/{len(rec.calls)}")


def merged_detections(starts: np.ndarray, scores: np.ndarray, thr: float) -> list[Event]:
    """Window scores through pamlive's own merger, as ``pamlive analyze`` merges them."""
    merger = WindowMerger(CLASS_NAMES, {"noise": 1.0, "right_whale": thr},
                          {"noise": False, "right_whale": True}, max_merge=10,
                          sample_rate=SAMPLE_RATE)
    found = []
    for i, (t, p) in enumerate(zip(starts.tolist(), scores.tolist(), strict=True)):
        s = round(t * SAMPLE_RATE)
        found += merger.push(i, s, s + SEGMENT, np.array([[1.0 - p, p]], np.float32))
    found += merger.flush()
    return [Event(d.start_s, d.end_s, d.score) for d in found]


@torch.no_grad()
def preview(model: UpcallNet, chain: TransformChain, recordings: list[Recording]) -> str:
    """Event-level sweep over thresholds with 1-s hop window scoring."""
    per_file = {}
    hours = 0.0
    for rec in recordings:
        segs, starts = file_windows(rec.audio)
        per_file[rec.stem] = (starts, model(features(chain, segs))[:, 1].numpy())
        hours += len(rec.audio) / SAMPLE_RATE / 3600
    annotations = {r.stem: r.calls for r in recordings}
    rows = []
    for thr in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99):
        dets = {stem: merged_detections(st, sc, thr) for stem, (st, sc) in per_file.items()}
        rows.append(score_events(dets, annotations, hours, thr))
    per_file_fa = {
        stem: score_events({stem: merged_detections(st, sc, 0.9)}, annotations, None)
        .false_alarms for stem, (st, sc) in per_file.items()
    }
    return format_scores(rows) + f"\nfalse alarms per file at 0.9: {per_file_fa}"


def export_package(
    model: UpcallNet, chain: TransformChain, out: Path, threshold: float
) -> None:
    """``model.onnx`` (input [-1,40,40,1] "input", softmax "probabilities") + metadata."""
    out.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 40, 40, 1)
    torch.onnx.export(
        model, (dummy,), str(out / "model.onnx"), input_names=["input"],
        output_names=["probabilities"], opset_version=17, dynamo=False,
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}},
        external_data=False,
    )
    package = {
        "schema": "pamlive.model/1",
        "name": "narw-upcall",
        "version": MODEL_VERSION,
        "description": (
            "North Atlantic right whale upcall detector: small CNN on PAMGuard's right whale "
            "spectrogram (2 s at 2 kHz, 47-357 Hz, 40x40) with per-frequency background "
            "subtraction, trained on DCLDE 2013 (NOPP6 Cape Cod Bay) labelled calls plus "
            "Koogu-teacher pseudo-calls and hard negatives from two other days; "
            "temperature-calibrated scores; see README.md for data, split and accuracy."
        ),
        "class_names": CLASS_NAMES,
        "thresholds": {"noise": 1.0, "right_whale": threshold},
        "binary": {"noise": False, "right_whale": True},
        "segment_s": 2.0,
        "sample_rate": 2000,
        "input_shape": [-1, 40, 40, 1],
        "output_activation": "none",
        "freq_range": [47, 357],
        "transforms": chain.to_json(),
    }
    (out / "pamlive-model.json").write_text(json.dumps(package, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--split", choices=["dev-a", "dev-b", "final", "loo-0", "loo-2"],
                   default="final",
                   help="loo-K: hold out the K-th right whale + background file (no export)")
    p.add_argument("--out", type=Path, default=REPO / "pamlive/models/narw")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--seed", type=int, default=20130328)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--per-call", type=int, default=20, help="augmented windows per call/epoch")
    p.add_argument("--neg-ratio", type=int, default=4, help="negatives per positive")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--noise-mix-max", type=float, default=2.0,
                   help="loudest added noise, relative to the window's level")
    p.add_argument("--widths", type=int, nargs=3, default=[16, 32, 64])
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--linear-input", action="store_true", help="no log compression")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--export", action="store_true", help="export a loo/dev fold's model too")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="no temperature scaling on the held-out files before export")
    p.add_argument("--no-teacher", dest="teacher", action="store_false",
                   help="v1 recipe: no unlabelled days (Koogu pseudo-calls), no hard negatives")
    p.add_argument("--holdout-day", type=int, default=-1,
                   help="leave this unlabelled day (0 or 1) out of training (cross-day check)")
    p.add_argument("--hard-frac", type=float, default=0.3,
                   help="share of negatives drawn from the hard-negative pool")
    p.add_argument("--speed", type=float, default=0.05,
                   help="speed perturbation: windows read 1 +- SPEED times as long")
    p.add_argument("--no-bg-sub", dest="bg_sub", action="store_false",
                   help="no per-frequency background subtraction inside the network")
    args = p.parse_args(argv)

    t0 = time.monotonic()
    set_determinism(args.seed, args.threads)
    chain = feature_chain(args.shared)
    train_files, eval_files = {
        "dev-a": (DEV_TRAIN_FILES, DEV_VALID_FILES),
        "dev-b": (DEV_VALID_FILES, DEV_TRAIN_FILES),
        "final": (TRAIN_FILES, TEST_FILES),
        "loo-0": leave_one_out(0),
        "loo-2": leave_one_out(2),
    }[args.split]
    recordings = load_recordings(args.shared, train_files)
    print(f"training on {', '.join(train_files)}: {sum(len(r.calls) for r in recordings)} calls")
    teacher = {Path(f).stem: cached_koogu(args.shared, args.shared / UNLABELLED_SUBDIR / f)
               for f in UNLABELLED_FILES}
    days = load_unlabelled(args.shared, teacher)
    attach_teachers(args.shared, days, args.shared / UNLABELLED_SUBDIR)
    if args.teacher:
        attach_teachers(args.shared, recordings, args.shared / DATA_SUBDIR)
        kept = [d for i, d in enumerate(days) if i != args.holdout_day]
        print(f"+ unlabelled days {', '.join(d.name for d in kept)}: "
              f"{sum(len(d.calls) for d in kept)} teacher-sure calls")
        recordings += kept
    model = train(recordings, chain, args)
    print(f"trained in {time.monotonic() - t0:.0f} s")
    print(f"window-scoring preview on {', '.join(eval_files)}:")
    held_out = load_recordings(args.shared, eval_files)
    if args.calibrate:
        attach_teachers(args.shared, held_out, args.shared / DATA_SUBDIR)
        model.temperature.fill_(fit_temperature(model, chain, held_out))
    print(preview(model, chain, held_out))
    for day in days:
        print(teacher_preview(model, chain, day))
    if args.split == "final" or args.export:
        export_package(model, chain, args.out, args.threshold)
        print(f"wrote {args.out}/model.onnx and pamlive-model.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
