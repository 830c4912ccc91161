"""Parity with batdetect2 1.3.1 on the six bat recordings (issue 16.4), through
``pamlive analyze`` with the package imported from the installed checkpoint; and the
command line with configs/bats.toml. Figures: ``python tests/bats_parity.py``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bats_parity import config_hop, parity
from cpu_flags import BF16_CPU

from pamlive.calls.match import FREQ_TOL_HZ, PROB_TOL, START_TOL_S, Parity, match_calls
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.raven import COLUMNS, read_selection_table

pytest.importorskip("torch", reason="the bats extra (PyTorch) is not installed")
pytestmark = [pytest.mark.slow,  # batdetect2 itself runs on the recordings
              pytest.mark.skipif(importlib.util.find_spec("batdetect2") is None,
                                 reason="batdetect2 is not installed (its checkpoint: pip "
                                        "install --no-deps batdetect2==1.3.1)")]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def bat_package(bats_package_dir: Path) -> ModelPackage:
    return load_model_package(bats_package_dir)


def _total(per_file: dict[str, Parity]) -> Parity:
    total = Parity()
    for p in per_file.values():
        total += p
    return total


def test_batdetect2s_chunks_give_batdetect2s_calls(bat_package: ModelPackage, shared_dir: Path,
                                                   tmp_path: Path) -> None:
    """hop = segment = 3 s: the windows are batdetect2's chunks, the calls its calls."""
    per_file = parity(bat_package, shared_dir, 3.0, tmp_path)
    assert len(per_file) == 6
    for name, p in per_file.items():
        assert p.reference > 0, name
        assert p.found == p.reference == len(p.pairs) == p.within_prob_tol, name
    dev = _total(per_file).max_dev()
    # far inside the issue's tolerances: float32 rounding, not approximation
    assert dev["start_s"] < START_TOL_S / 100 and dev["freq_hz"] < FREQ_TOL_HZ / 1000
    assert dev["class_prob"] < PROB_TOL / 1000 and dev["det_prob"] < PROB_TOL / 1000


@pytest.mark.skipif(not BF16_CPU, reason="this CPU has no bfloat16 arithmetic")
def test_bfloat16_keeps_every_batdetect2_call_within_the_issue_s_tolerances(
        bat_package: ModelPackage, shared_dir: Path, tmp_path: Path) -> None:
    """[model] precision = "bfloat16" (OpenVINO): every one of batdetect2's calls found, same
    species, start within 1 ms, bounds within 1 kHz, probabilities within 0.01; bfloat16's
    rounding (~0.006 here) can lift a call that lies just under the threshold over it."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    total = _total(parity(bat_package, shared_dir, 3.0, tmp_path, precision="bfloat16"))
    assert total.reference == len(total.pairs) == total.same_species == total.within_prob_tol
    assert total.reference <= total.found <= total.reference + 2  # measured: 170 of 169
    dev = total.max_dev()
    assert 1e-4 < dev["det_prob"] < PROB_TOL  # bfloat16, not float32 rounding: measured 0.006

def test_overlapping_windows_find_most_of_batdetect2s_calls(
        bat_package: ModelPackage, shared_dir: Path, tmp_path: Path) -> None:
    """configs/bats.toml's hop: windows see other 3 s of context than batdetect2's chunks
    (per-window PCEN and mean subtraction), so probabilities move; docs/bats.md has the
    figures this checks a floor under."""
    hop = config_hop()
    assert hop < 3.0
    total = _total(parity(bat_package, shared_dir, hop, tmp_path))
    assert len(total.pairs) >= 0.75 * total.reference  # measured 137 / 169
    assert total.same_species >= 0.98 * len(total.pairs)  # measured 136 / 137
    assert abs(total.found - total.reference) <= 0.05 * total.reference  # 167 vs 169


def _pamlive(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pamlive", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def test_analyze_with_the_bats_config(bats_package_dir: Path, shared_dir: Path,
                                      tmp_path: Path) -> None:
    """The acceptance command: one Raven row per call, species and frequency box."""
    (tmp_path / "batdetect2-uk").symlink_to(bats_package_dir)
    wav = shared_dir / "data" / "bats" / "20200817_011342.wav"
    r = _pamlive("analyze", str(wav), "-c", str(REPO / "configs" / "bats.toml"), "-o", "OUT",
                 "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "call(s) ->" in r.stdout
    rows = read_selection_table(tmp_path / "OUT" / "20200817_011342.selections.txt")
    assert set(COLUMNS) | {"Det Prob"} <= set(rows[0])
    assert len(rows) >= 30
    for row in rows:
        low, high = float(row["Low Freq (Hz)"]), float(row["High Freq (Hz)"])
        assert 10000 <= low < high <= 125000
        assert float(row["Begin Time (s)"]) < float(row["End Time (s)"])
        assert row["Class"] in load_model_package(bats_package_dir).class_names
        assert 0.3 < float(row["Det Prob"]) <= 1 and 0 < float(row["Score"]) <= 1
    r = _pamlive("analyze", str(wav), "-c", str(REPO / "configs" / "bats.toml"), "-o", "HIGH",
                 "--no-progress", "--detection-threshold", "0.5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    high = read_selection_table(tmp_path / "HIGH" / "20200817_011342.selections.txt")
    assert 0 < len(high) < len(rows)
    assert all(float(row["Det Prob"]) > 0.5 for row in high)
    # the flag's old spelling still works, with a deprecation warning (docs/contracts.md)
    r = _pamlive("analyze", str(wav), "-c", str(REPO / "configs" / "bats.toml"), "-o", "OLD",
                 "--no-progress", "--threshold", "0.5", cwd=tmp_path)
    assert r.returncode == 0 and "--threshold on an event model is deprecated" in r.stderr
    assert read_selection_table(tmp_path / "OLD" / "20200817_011342.selections.txt") == high


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--scores"], "is an event model: it reports calls, and --scores"),
    (["--cluster", "local"], "is an event model: it reports calls, and --cluster"),
])
def test_what_an_event_model_cannot_do_is_one_line(bats_package_dir: Path, shared_dir: Path,
                                                   tmp_path: Path, flags: list[str],
                                                   fragment: str) -> None:
    (tmp_path / "batdetect2-uk").symlink_to(bats_package_dir)
    wav = shared_dir / "data" / "bats" / "20200817_011342.wav"
    r = _pamlive("analyze", str(wav), "-c", str(REPO / "configs" / "bats.toml"), "-o", "OUT",
                 *flags, cwd=tmp_path)
    assert r.returncode == 2
    assert fragment in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "OUT").exists()


def test_an_ensemble_member_cannot_be_an_event_model(bats_package_dir: Path,
                                                     tmp_path: Path) -> None:
    cfg = tmp_path / "e.toml"
    cfg.write_text(f'[[model.members]]\npath = "builtin:narw"\n\n[[model.members]]\n'
                   f'path = "{bats_package_dir}"\n')
    r = _pamlive("analyze", "x.wav", "-c", str(cfg), "-o", "OUT", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "#2" in r.stderr and "is an event model" in r.stderr


def test_calls_seen_by_two_windows_are_reported_once(bat_package: ModelPackage,
                                                     shared_dir: Path) -> None:
    """hop 1.5 s: every call lies in two windows; the de-duplicated count stays
    batdetect2's (78 calls in this recording), not nearly twice it."""
    import soundfile as sf

    from pamlive.calls.stream import EventDetector
    from pamlive.inference.heatmaps import EventModel

    x, rate = sf.read(shared_dir / "data" / "bats" / "20200817_011352.wav", dtype="float32")
    detector = EventDetector(EventModel(bat_package), rate, 1, hop_s=1.5, threshold=0.3)
    calls = detector.push(x[:, None]) + detector.finish()
    assert detector.dedup.merged >= 30  # measured 52
    assert abs(len(calls) - 78) <= 4  # measured 79
    assert calls == sorted(calls, key=lambda c: c.start_s)


def test_each_channel_has_its_own_calls(bat_package: ModelPackage, shared_dir: Path) -> None:
    """Two recordings as the two channels of one stream (batched together) give each
    recording's own calls, on its channel."""
    import dataclasses

    import numpy as np
    import soundfile as sf

    from pamlive.calls.stream import EventDetector
    from pamlive.inference.heatmaps import EventModel

    model = EventModel(bat_package)
    names = ("20200817_011342", "20200817_011352")
    audio = [sf.read(shared_dir / "data" / "bats" / f"{n}.wav", dtype="float32", start=750000,
                     stop=1750000) for n in names]  # 3 .. 7 s: calls in both, two windows
    rate = audio[0][1]

    def run(x: np.ndarray) -> list:
        detector = EventDetector(model, rate, x.shape[1], hop_s=2.5, threshold=0.3)
        return detector.push(x) + detector.finish()

    both = run(np.stack([a for a, _ in audio], axis=1))
    for ch, (x, _) in enumerate(audio):
        alone = [dataclasses.replace(c, channel=ch) for c in run(x[:, None])]
        mine = [c for c in both if c.channel == ch]
        p = match_calls(mine, alone)  # a batch of two rounds the last float bits otherwise
        assert len(alone) == len(mine) == len(p.pairs) == p.within_prob_tol > 0
        dev = p.max_dev()
        assert dev["start_s"] < 1e-6 and dev["class_prob"] < 1e-4 and dev["det_prob"] < 1e-4


def test_window_score_thresholds_are_refused_for_an_event_model(bats_package_dir: Path,
                                                                tmp_path: Path) -> None:
    cfg = tmp_path / "b.toml"
    text = (REPO / "configs" / "bats.toml").read_text(encoding="utf-8")
    cfg.write_text(text.replace("threads = 1", 'threads = 1\nthresholds = { "Myotis '
                                'daubentonii" = 0.5 }'), encoding="utf-8")
    (tmp_path / "batdetect2-uk").symlink_to(bats_package_dir)
    r = _pamlive("analyze", "x.wav", "-c", str(cfg), "-o", "OUT", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "set [model] detection_threshold instead" in r.stderr


def test_analyze_runs_one_window_per_network_batch(bat_package: ModelPackage,
                                                   shared_dir: Path) -> None:
    """analyze hands the detector blocks of many windows; one batch of them all would hold
    ~27 MB of activations per channel-window, so each window (its channels) is one batch."""
    import numpy as np
    import soundfile as sf

    from pamlive.calls.stream import EventDetector
    from pamlive.inference.heatmaps import EventModel

    path = sorted((shared_dir / "data" / "bats").glob("*.wav"))[0]
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    model = EventModel(bat_package)
    batches: list[int] = []
    run = model.run

    def counted(features: np.ndarray) -> list:
        batches.append(features.shape[0])
        return run(features)

    model.run = counted  # type: ignore[method-assign]
    detector = EventDetector(model, rate, 2, hop_s=2.5)
    calls = detector.push(np.repeat(audio, 2, axis=1)) + detector.finish()
    assert len(batches) >= 3 and set(batches) == {2}
    assert {c.channel for c in calls} == {0, 1}
