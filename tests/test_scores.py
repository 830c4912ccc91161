"""``pamlive analyze --scores``: the score table holds exactly the windows analyze scores."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pamlive.analyze import analyze_files
from pamlive.inference.classifier import Classifier
from pamlive.inference.package import load_model_package
from pamlive.raven import read_selection_table

RECORDINGS = ["data/narw-dclde2013/train/narw/NOPP6_EST_20090328_001500.wav",
              "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_003000.wav"]
SECONDS = 301.3  # not a whole number of hops: analyze adds a window aligned to the end


def analyze(tmp_path: Path, wav: Path, *flags: str) -> subprocess.CompletedProcess:
    config = tmp_path / "narw.toml"
    config.write_text('[model]\npath = "builtin:narw"\nhop_s = 1.0\n')
    return subprocess.run([sys.executable, "-m", "pamlive", "analyze", str(wav), "-c",
                           str(config), "-o", str(tmp_path / "out"), *flags],
                          capture_output=True, text=True, timeout=300)


def expected_windows(audio: np.ndarray, rate: int) -> list[tuple[float, float, np.ndarray]]:
    """(start s, end s, scores (channels, classes)) of every window, cut here by hand: 2 s
    windows every 1 s, then one ending at the last sample; each channel scored alone."""
    package = load_model_package("builtin:narw")
    classifier = Classifier(package)
    chain = package.chain()
    seg, hop = 2 * rate, rate
    starts = list(range(0, audio.shape[0] - seg + 1, hop))
    if starts[-1] + seg < audio.shape[0]:
        starts.append(audio.shape[0] - seg)
    model_rate = package.sample_rate
    resampled = [chain.resampler(rate, 1).process(audio[:, c]) for c in range(audio.shape[1])]
    out = []
    for s in starts:
        m0 = s * model_rate // rate
        feats = [chain.apply(r[m0:m0 + 2 * model_rate, 0][None]) for r in resampled]
        scores = np.concatenate([classifier.predict(f) for f in feats])
        out.append((s / rate, (s + seg) / rate, scores))
    return out


def test_score_rows_are_the_scored_windows(shared_dir: Path, tmp_path: Path) -> None:
    channels = 2  # two real recordings side by side: rows go window by window, channel 1, 2
    parts = [sf.read(shared_dir / r, dtype="float32", frames=round(2000 * SECONDS))[0]
             for r in RECORDINGS[:channels]]
    audio = np.stack(parts, axis=1)
    name = Path(RECORDINGS[0]).name  # keeps the start time in its name: 2009-03-28 00:15:00
    sf.write(tmp_path / name, audio, 2000, subtype="FLOAT")
    r = analyze(tmp_path, tmp_path / name, "--scores")
    assert r.returncode == 0, r.stderr
    with (tmp_path / "out" / name.replace(".wav", ".scores.csv")).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["filename", "channel", "start", "end", "start_utc", "end_utc",
                             "noise", "right_whale"]
    windows = expected_windows(audio, 2000)
    assert len(windows) == 301  # 300 regular windows and the one aligned to the end
    assert len(rows) == len(windows) * channels
    t0 = datetime(2009, 3, 28, 0, 15, tzinfo=UTC)
    for i, (start, end, scores) in enumerate(windows):
        for ch in range(channels):
            row = rows[i * channels + ch]
            assert row["filename"] == name and row["channel"] == str(ch + 1)
            assert float(row["start"]) == pytest.approx(start, abs=1e-6)
            assert float(row["end"]) == pytest.approx(end, abs=1e-6)
            assert row["start_utc"] == (t0 + timedelta(seconds=start)).isoformat(
                timespec="milliseconds").replace("+00:00", "Z")
            got = np.array([row["noise"], row["right_whale"]], np.float32)
            # read back as written; ONNX Runtime may round the last float32 bit differently
            # for a batch of windows than for one window alone (the reference here)
            np.testing.assert_allclose(got, scores[ch], rtol=1e-5, atol=1e-8)
    # the detections are the runs of windows over the threshold, as the table shows them
    detections = read_selection_table(tmp_path / "out" / name.replace(".wav",
                                                                       ".selections.txt"))
    over = {round(float(row["start"]), 3) for row in rows
            if np.float32(row["right_whale"]) >= np.float32(0.9)}
    assert detections
    for det in detections:
        assert round(float(det["Begin Time (s)"]), 3) in over


def test_utc_is_empty_without_a_time_in_the_name_and_no_table_unless_asked(
        shared_dir: Path, tmp_path: Path) -> None:
    audio, rate = sf.read(shared_dir / RECORDINGS[0], dtype="float32", frames=2000 * 5)
    sf.write(tmp_path / "clip.wav", audio, rate)
    package = load_model_package("builtin:narw")
    analyze_files([tmp_path / "clip.wav"], package, tmp_path / "plain", progress=False)
    assert [p.name for p in (tmp_path / "plain").iterdir()] == ["clip.selections.txt"]
    analyze_files([tmp_path / "clip.wav"], package, tmp_path / "out", progress=False,
                  scores=True)
    with (tmp_path / "out" / "clip.scores.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["start"], r["end"], r["start_utc"], r["end_utc"]) for r in rows] == [
        ("0.000000", "2.000000", "", ""), ("1.000000", "3.000000", "", ""),
        ("2.000000", "4.000000", "", ""), ("3.000000", "5.000000", "", "")]


def test_a_score_table_that_cannot_be_written_is_one_line(shared_dir: Path,
                                                          tmp_path: Path) -> None:
    """A full disk (here: a 16 kB file size limit) stops the score table, not the analysis:
    one line names it, the selection table is written (the detections are kept), the exit
    status says it failed."""
    import resource

    audio, rate = sf.read(shared_dir / RECORDINGS[0], dtype="float32", frames=2000 * 600)
    sf.write(tmp_path / "long.wav", audio, rate)
    config = tmp_path / "narw.toml"
    config.write_text('[model]\npath = "builtin:narw"\n')
    r = subprocess.run(
        [sys.executable, "-m", "pamlive", "analyze", str(tmp_path / "long.wav"), "-c",
         str(config), "-o", str(tmp_path / "out"), "--scores"],
        capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 14, 1 << 14)))
    assert r.returncode == 1, r.stderr
    assert "long.scores.csv: cannot write score table (File too large)" in r.stderr
    assert "Traceback" not in r.stderr
    assert read_selection_table(tmp_path / "out" / "long.selections.txt")
    assert not (tmp_path / "out" / "long.scores.csv").exists()
