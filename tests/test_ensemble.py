"""Model ensembles: fusion rules by hand, time alignment by hand, real ONNX packages end to end."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pamlive.config import load_config
from pamlive.ensemble import (
    Aligner,
    EnsembleDetector,
    EnsembleMerger,
    classify_members,
    load_ensemble,
)
from pamlive.errors import ConfigError
from pamlive.fusion import at_threshold_scale, fuse, fuse_all, fuse_k_of_n, fuse_mean
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import load_model_package
from pamlive.pipeline import StreamDetector
from pamlive.raven import read_selection_table
from pamlive.windows import Window

NAN = math.nan
RECORDING = "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_001500.wav"


# ---------------------------------------------------------------- fusion rules, by hand


def test_at_threshold_scale_puts_each_threshold_on_one_half() -> None:
    s = np.array([[0.0, 0.4, 0.8, 0.9, 1.0],
                  [0.49, 0.98, 0.99, 1.0, NAN]])
    u = at_threshold_scale(s, [0.8, 0.98])
    # member 0 (t = 0.8): 0 -> 0, 0.4 -> 0.25, 0.8 -> 0.5, 0.9 -> 0.5 + 0.5 * 0.1/0.2, 1 -> 1
    np.testing.assert_allclose(u[0], [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-7)
    # member 1 (t = 0.98): 0.49 -> 0.25, 0.98 -> 0.5, 0.99 -> 0.75, 1 -> 1, missing stays NaN
    np.testing.assert_allclose(u[1, :4], [0.25, 0.5, 0.75, 1.0], atol=1e-6)
    assert math.isnan(u[1, 4])


def test_at_threshold_scale_extreme_thresholds() -> None:
    # threshold 1: only a score of exactly 1 reaches it; threshold 0: every score does
    np.testing.assert_allclose(at_threshold_scale(np.array([[0.6, 1.0]]), [1.0]), [[0.3, 1.0]])
    np.testing.assert_allclose(at_threshold_scale(np.array([[0.0, 0.6]]), [0.0]), [[0.5, 0.8]])


def test_mean_counts_a_missing_member_as_zero() -> None:
    s = np.array([[0.9, 0.2], [NAN, 0.4], [0.6, 0.6]])
    np.testing.assert_allclose(fuse_mean(s), [(0.9 + 0.6) / 3, 0.4])


def test_all_needs_every_member_over_its_own_threshold() -> None:
    t = [0.8, 0.98]
    # columns: both over; first over, second just under; exactly at both; one missing
    s = np.array([[0.85, 0.85, 0.8, 0.99], [0.99, 0.97, 0.98, NAN]])
    fused = fuse_all(s, t)
    np.testing.assert_allclose(fused[0], min(0.5 + 0.5 * 0.05 / 0.2, 0.75))  # 0.625
    np.testing.assert_allclose(fused[1], 0.5 * 0.97 / 0.98)
    assert fused[2] == 0.5  # a score equal to its threshold reaches it
    assert fused[3] == 0.0  # a missing member never agrees
    assert list(fused >= 0.5) == [True, False, True, False]


def test_k_of_n_counts_members_over_their_thresholds() -> None:
    t = [0.8, 0.98, 0.98]
    s = np.array([[0.9], [0.5], [0.99]])  # at-threshold: 0.75, 0.2551, 0.75
    assert fuse_k_of_n(s, t, 1)[0] == pytest.approx(0.75)
    assert fuse_k_of_n(s, t, 2)[0] == pytest.approx(0.75)  # two of three reach
    assert fuse_k_of_n(s, t, 3)[0] == pytest.approx(0.5 * 0.5 / 0.98)  # the third does not
    assert fuse_k_of_n(s, t, 3)[0] == fuse_all(s, t)[0]
    # a missing member is a member that does not reach its threshold
    s_missing = np.array([[0.9], [NAN], [0.99]])
    assert fuse_k_of_n(s_missing, t, 2)[0] >= 0.5 > fuse_k_of_n(s_missing, t, 3)[0]
    for bad_k in (0, 4):
        with pytest.raises(ValueError, match="1 <= k <= 3"):
            fuse_k_of_n(s, t, bad_k)


def test_fuse_dispatches_by_rule_name() -> None:
    s, t = np.array([[0.9], [0.7]]), [0.8, 0.8]
    assert fuse("mean", s, t)[0] == pytest.approx(0.8)
    assert fuse("all", s, t)[0] < 0.5 <= fuse("k_of_n", s, t, 1)[0]
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fuse("any", s, t)


# ---------------------------------------------------------------- time alignment, by hand

RATE = 1000


def windows(ends_s: list[float], length_s: float, first_index: int = 0) -> list[Window]:
    return [Window(first_index + i, round((e - length_s) * RATE), round(e * RATE),
                   round(e * RATE), np.zeros(1, np.float32)) for i, e in enumerate(ends_s)]


def scores_for(ws: list[Window], value: float | None = None) -> np.ndarray:
    """One channel, one class; the score encodes the window's end (or is ``value``)."""
    return np.array([[[w.end_sample / 1e4 if value is None else value]] for w in ws])


def add(aligner: Aligner, member: int, ws: list[Window]) -> None:
    aligner.add(member, ws, scores_for(ws))


def part_ends(aligned) -> list[tuple[int, list[int | None]]]:
    return [(lead.end_sample, [p[0].end_sample if p else None for p in parts])
            for lead, parts in aligned]


def test_members_with_different_hops_and_lengths_meet_at_lead_window_ends() -> None:
    # A (lead): 2 s windows every 1 s; B: 3 s windows every 1.5 s (ends 3, 4.5, 6 s)
    al = Aligner([1.0 * RATE, 1.5 * RATE], [2.0 * RATE, 3.0 * RATE], lead=0)
    add(al, 0, windows([2, 3, 4, 5, 6], 2.0))
    # B has no window yet: E = 2 s is decided at once (B's first window cannot end before
    # 3 s, so B is missing there), E = 3 s waits for B
    assert part_ends(al.ready()) == [(2000, [2000, None])]
    add(al, 1, windows([3], 3.0))
    # B's next window ends >= 4.5 s, so 3 s and 4 s are decided; 4 s uses B's 3 s window
    assert part_ends(al.ready()) == [(3000, [3000, 3000]), (4000, [4000, 3000])]
    add(al, 1, windows([4.5, 6], 3.0, first_index=1))
    assert part_ends(al.ready()) == [(5000, [5000, 4500]), (6000, [6000, 6000])]
    assert al.ready(final=True) == []


def test_a_member_never_uses_a_window_from_after_the_grid_time() -> None:
    # B's 2.25 s windows end 0.25 s after A's: each grid point takes B's previous window
    al = Aligner([1.0 * RATE, 1.0 * RATE], [2.0 * RATE, 2.25 * RATE], lead=0)
    add(al, 0, windows([2, 3, 4], 2.0))
    add(al, 1, windows([2.25, 3.25, 4.25], 2.25))
    assert part_ends(al.ready()) == [(2000, [2000, None]), (3000, [3000, 2250]),
                                     (4000, [4000, 3250])]


def test_a_member_with_dropped_windows_is_missing_not_stale() -> None:
    al = Aligner([1.0 * RATE, 1.0 * RATE], [2.0 * RATE, 2.0 * RATE], lead=0)
    add(al, 0, windows([2, 3, 4, 5], 2.0))
    add(al, 1, windows([2, 3], 2.0))  # then B's windows ending 4 s and 5 s are lost
    assert part_ends(al.ready()) == [(2000, [2000, 2000]), (3000, [3000, 3000])]
    add(al, 1, windows([6], 2.0, first_index=4))  # B goes on after the loss
    assert part_ends(al.ready()) == [(4000, [4000, None]), (5000, [5000, None])]


def test_live_a_member_that_stops_delivering_holds_the_grid_only_to_the_stall_bound() -> None:
    """Live, a member whose every batch fails delivers nothing more: the others' grid
    points are decided once the lead is ``stall_in`` past them, with the member missing
    (without the bound they waited for it for ever: no alert at all)."""
    al = Aligner([1.0 * RATE, 1.0 * RATE], [2.0 * RATE, 2.0 * RATE], lead=0,
                 stall_in=3.0 * RATE)
    add(al, 1, windows([2], 2.0))  # B's last window; its later batches all fail
    add(al, 0, windows([2, 3, 4, 5, 6, 7], 2.0))
    # 2 s is decided by B's window; 3 s waits until the lead is more than 3 s past it
    assert part_ends(al.ready()) == [(2000, [2000, 2000]), (3000, [3000, None])]
    add(al, 0, windows([8], 2.0, first_index=6))
    assert part_ends(al.ready()) == [(4000, [4000, None])]


def test_end_of_stream_decides_every_pending_point() -> None:
    al = Aligner([0.5 * RATE, 1.0 * RATE], [2.0 * RATE, 5.0 * RATE], lead=0)
    add(al, 0, windows([2, 2.5, 3], 2.0))  # B's window (5 s) is longer than the stream
    assert part_ends(al.ready()) == [(2000, [2000, None]), (2500, [2500, None]),
                                     (3000, [3000, None])]
    al = Aligner([1.0 * RATE, 1.0 * RATE], [2.0 * RATE, 1.0 * RATE], lead=0)
    add(al, 0, windows([2, 3], 2.0))
    assert part_ends(al.ready()) == []  # B (1 s windows) could still end a window by 2 s
    assert part_ends(al.ready(final=True)) == [(2000, [2000, None]), (3000, [3000, None])]


# ---------------------------------------------------------------- real ONNX packages

def write_config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "ensemble.toml"
    p.write_text(body)
    return p


NARW_MEMBER_THRESHOLD = 0.1  # low enough for a handful of detections in 5 minutes


def members_config(tonal: Path, fusion: str, narw_hop: float = 1.0,
                   narw_threshold: float = NARW_MEMBER_THRESHOLD) -> str:
    return (f'[model]\nhop_s = 0.5\nmax_merge = 10\n'
            f'[[model.members]]\npath = "builtin:narw"\nhop_s = {narw_hop}\n'
            f'thresholds = {{ right_whale = {narw_threshold} }}\n'
            f'[[model.members]]\npath = "{tonal}"\n'
            f'[model.fusion]\nright_whale = {fusion}\n')


def single_scores(path: str, audio: np.ndarray, rate: int, hop_s: float) -> dict[int, np.ndarray]:
    """Every window's scores from the model alone, keyed by window end (input samples)."""
    package = load_model_package(path)
    out: dict[int, np.ndarray] = {}
    det = StreamDetector(package, Classifier(package), rate, audio.shape[1], hop_s=hop_s,
                         on_scores=lambda w, s: out.__setitem__(w.end_sample, s))
    det.push(audio)
    det.finish()
    return out


def test_ensemble_members_score_exactly_as_the_models_alone(shared_dir: Path,
                                                             tonal_package: Path,
                                                             tmp_path: Path) -> None:
    audio, rate = sf.read(shared_dir / RECORDING, dtype="float32", always_2d=True,
                          frames=2000 * 240)
    cfg = load_config(write_config(tmp_path, members_config(tonal_package, '{ rule = "all" }')))
    ensemble = load_ensemble(cfg.model)
    assert [m.name for m in ensemble.members] == ["narw-upcall", "tonal-test"]
    assert ensemble.lead == 1  # the tonal member's 0.5 s hop is the finer grid
    fused = []
    det = EnsembleDetector(ensemble, rate, 1, on_scores=lambda fw, s: fused.append(fw))
    for start in range(0, audio.shape[0], 7777):  # block size must not matter
        det.push(audio[start:start + 7777])
    det.finish()
    narw = single_scores("builtin:narw", audio, rate, 1.0)
    tonal = single_scores(str(tonal_package), audio, rate, 0.5)
    assert [fw.end_sample for fw in fused] == sorted(tonal)  # one fused window per grid point
    used_narw = set()
    for fw in fused:
        n_part, t_part = fw.parts
        np.testing.assert_array_equal(t_part[1], tonal[fw.end_sample])
        if n_part is None:
            assert fw.scores[0, 1] == 0.0  # missing: never agrees
            continue
        w, s = n_part
        assert fw.end_sample - 2000 < w.end_sample <= fw.end_sample  # within one narw hop
        np.testing.assert_array_equal(s, narw[w.end_sample])
        used_narw.add(w.end_sample)
        expected = fuse_all(np.array([[s[0, 1]], [t_part[1][0, 1]]]),
                            [NARW_MEMBER_THRESHOLD, 0.5])[0]
        assert fw.scores[0, 1] == expected
        assert fw.start_sample == min(w.start_sample, t_part[0].start_sample)
    assert used_narw == set(narw)  # every window of the coarser member is used


def test_analyze_with_a_two_model_ensemble(shared_dir: Path, tonal_package: Path,
                                           tmp_path: Path) -> None:
    """A real process over a real recording: detections are the runs of fused windows where
    at least one member reached its own threshold (read back from the score table)."""
    config = write_config(tmp_path, members_config(tonal_package,
                                                   '{ rule = "k_of_n", k = 1 }'))
    stem = Path(RECORDING).stem
    audio, rate = sf.read(shared_dir / RECORDING, dtype="float32", frames=2000 * 300)
    sf.write(tmp_path / f"{stem}.wav", audio, rate)  # its first 5 minutes
    r = subprocess.run([sys.executable, "-m", "pamlive", "analyze", str(tmp_path / f"{stem}.wav"),
                        "-c", str(config), "-o", str(tmp_path / "out"), "--scores"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with (tmp_path / "out" / f"{stem}.scores.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 300 - 3  # the grid: tonal's 2 s windows every 0.5 s

    def reached(row: dict[str, str]) -> bool:
        narw = row["narw-upcall:right_whale"]
        return (narw != "" and np.float32(narw) >= np.float32(NARW_MEMBER_THRESHOLD)) or \
            np.float32(row["tonal-test:right_whale"]) >= np.float32(0.5)

    positive = [reached(row) for row in rows]
    assert [float(row["right_whale"]) >= 0.5 for row in rows] == positive
    # PAMGuard's merge rule over the fused windows: runs of positives, at most 10 windows
    runs = []
    for i, pos in enumerate(positive):
        if pos and runs and runs[-1][1] == i - 1 and runs[-1][2] < 10:
            runs[-1] = (runs[-1][0], i, runs[-1][2] + 1)
        elif pos:
            runs.append((i, i, 1))
    detections = read_selection_table(tmp_path / "out" / f"{stem}.selections.txt")
    assert len(detections) == len(runs) > 5
    for det, (first, last, n) in zip(detections, runs, strict=True):
        assert float(det["Begin Time (s)"]) == pytest.approx(float(rows[first]["start"]), abs=1e-4)
        assert float(det["End Time (s)"]) == pytest.approx(float(rows[last]["end"]), abs=1e-4)
        assert int(det["Windows"]) == n


def test_an_ensemble_of_one_detects_like_the_model_alone(shared_dir: Path,
                                                          tmp_path: Path) -> None:
    audio, rate = sf.read(shared_dir / RECORDING, dtype="float32", always_2d=True)
    package = load_model_package("builtin:narw")
    alone = StreamDetector(package, Classifier(package), rate, 1, hop_s=1.0)
    expected = alone.push(audio) + alone.finish()
    # the mean of one member at the model's own threshold is the model alone
    mean = f'{{ rule = "mean", threshold = {package.thresholds["right_whale"]} }}'
    for rule in ('{ rule = "all" }', mean):
        cfg = load_config(write_config(
            tmp_path, f'[[model.members]]\npath = "builtin:narw"\n[model.fusion]\n'
                      f'right_whale = {rule}\n'))
        det = EnsembleDetector(load_ensemble(cfg.model), rate, 1)
        got = det.push(audio) + det.finish()
        assert [(d.start_sample, d.end_sample, d.n_windows) for d in got] == \
            [(d.start_sample, d.end_sample, d.n_windows) for d in expected]
        assert len(expected) > 5


def test_bad_ensembles_are_one_line_errors(tonal_package: Path, tmp_path: Path) -> None:
    cases = {
        '{ rule = "k_of_n", k = 3 }': "k must be 1..2",
        '{ rule = "vote" }': "rule must be mean, all or k_of_n",
        '{ rule = "all", k = 1 }': "k goes with rule = 'k_of_n'",
    }
    for fusion, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_ensemble(load_config(write_config(tmp_path, members_config(tonal_package,
                                                                            fusion))).model)
    body = members_config(tonal_package, '{ rule = "all" }').replace(
        'path = "builtin:narw"', 'path = "builtin:narw"\nclasses = { right_whale = "NARW" }')
    with pytest.raises(ConfigError, match="narw-upcall has no class NARW"):
        load_ensemble(load_config(write_config(tmp_path, body)).model)
    with pytest.raises(ConfigError, match="path and thresholds go into each"):
        load_config(write_config(tmp_path, '[model]\nthresholds = { right_whale = 0.5 }\n'
                                           '[[model.members]]\npath = "builtin:narw"\n'))


def test_the_merge_stage_takes_members_in_any_interleaving(shared_dir: Path,
                                                            tonal_package: Path,
                                                            tmp_path: Path) -> None:
    """The live engine's hook: member windows scored on a worker thread arrive member by
    member in any interleaving; the fused windows and detections do not change."""
    audio, rate = sf.read(shared_dir / RECORDING, dtype="float32", always_2d=True,
                          frames=2000 * 300)
    cfg = load_config(write_config(tmp_path, members_config(tonal_package,
                                                            '{ rule = "k_of_n", k = 1 }')))
    ensemble = load_ensemble(cfg.model)
    reference: list = []
    det = EnsembleDetector(ensemble, rate, 1, on_scores=lambda fw, s: reference.append(fw))
    expected = det.push(audio) + det.finish()
    cut = []
    for m, member in enumerate(ensemble.members):
        windower = member.windower(rate, 1)
        cut.append([(m, w) for w in windower.push(audio) + windower.flush()])
    rng = np.random.default_rng(7)
    order = np.concatenate([np.full(len(c), m) for m, c in enumerate(cut)])
    rng.shuffle(order)  # a random interleaving that keeps each member's own order
    queue = [cut[m].pop(0) for m in order]
    fused: list = []
    merger = EnsembleMerger(ensemble, rate, 10, on_scores=lambda fw, s: fused.append(fw))
    got = []
    for start in range(0, len(queue), 32):  # the inference thread's batches
        for m, ws, scores in classify_members(ensemble, queue[start:start + 32]):
            got += merger.push(m, ws, scores)
    got += merger.flush(audio.shape[0])
    assert [(f.index, f.start_sample, f.end_sample) for f in fused] == \
        [(f.index, f.start_sample, f.end_sample) for f in reference]
    np.testing.assert_array_equal(np.stack([f.scores for f in fused]),
                                  np.stack([f.scores for f in reference]))
    assert [(d.start_sample, d.end_sample, d.score) for d in got] == \
        [(d.start_sample, d.end_sample, d.score) for d in expected]
    assert len(expected) > 3


def test_the_first_member_can_rename_the_ensemble_classes(tonal_package: Path,
                                                          tmp_path: Path) -> None:
    body = (f'[[model.members]]\npath = "{tonal_package}"\nclasses = {{ upcall = "right_whale" }}\n'
            f'[[model.members]]\npath = "builtin:narw"\nclasses = {{ upcall = "right_whale" }}\n'
            '[model.fusion]\nupcall = { rule = "mean", threshold = 0.7 }\n')
    ensemble = load_ensemble(load_config(write_config(tmp_path, body)).model)
    assert ensemble.class_names == ["noise", "upcall"]
    assert ensemble.binary == {"noise": False, "upcall": True}
    assert [m.columns for m in ensemble.members] == [[0, 1], [0, 1]]
    assert ensemble.fusion["upcall"].threshold == 0.7
    assert ensemble.fusion["noise"].rule == "mean"  # a class that does not detect: the mean
