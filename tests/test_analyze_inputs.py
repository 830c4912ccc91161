"""``pamlive analyze`` input handling: names of tables, missing inputs, interruption."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone_in_noise
from test_analyze import pamlive

from pamlive.raven import read_selection_table, table_paths


@pytest.fixture()
def config(tmp_path: Path, tonal_package: Path) -> Path:
    """The tonal test model (a tone scores high, noise low), hop 1 s."""
    (tmp_path / "tonal.toml").write_text(f'[model]\npath = "{tonal_package}"\n')
    return tmp_path / "tonal.toml"


def _begins(table: Path) -> list[float]:
    return [float(r["Begin Time (s)"]) for r in read_selection_table(table)]


def test_same_stem_in_two_folders_gets_two_tables(tmp_path: Path, config: Path) -> None:
    data = tmp_path / "data"
    for folder, tone in (("a", 4.2), ("b", 12.2)):
        (data / folder).mkdir(parents=True)
        sf.write(data / folder / "x.wav", tone_in_noise(8000, 20, [(tone, tone + 1.6, 150.0)]),
                 8000)
    sf.write(data / "c.wav", tone_in_noise(8000, 20, [(8.2, 9.8, 150.0)]), 8000)
    r = pamlive("analyze", str(data), "-c", str(config), "-o", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "o"
    assert sorted(p.name for p in out.iterdir()) == [
        "a__x.selections.txt", "b__x.selections.txt", "c.selections.txt"]
    (a,), (b,), (c,) = (_begins(out / f"{n}.selections.txt") for n in ("a__x", "b__x", "c"))
    assert a <= 4.2 < a + 4 and b <= 12.2 < b + 4 and c <= 8.2 < c + 4
    for name in ("a__x", "b__x"):
        assert f"x.wav: 1 detection(s) -> {out / name}.selections.txt" in r.stdout


def test_table_names_are_unique_in_every_case(tmp_path: Path) -> None:
    paths = [Path("d/x.wav"), Path("d/x.flac"), Path("e/f/x.wav"), Path("d__x.wav"),
             Path("y.wav")]
    names = {p: t.name for p, t in table_paths(tmp_path, paths).items()}
    assert len(set(names.values())) == len(paths)
    assert names[Path("y.wav")] == "y.selections.txt"
    assert names[Path("d/x.flac")] == "d__x.flac.selections.txt"
    assert names[Path("e/f/x.wav")] == "e__f__x.selections.txt"


def test_a_missing_input_is_one_failed_input_among_others(tmp_path: Path,
                                                          config: Path) -> None:
    sf.write(tmp_path / "good.wav", tone_in_noise(8000, 20, [(8.2, 9.8, 150.0)]), 8000)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    r = pamlive("analyze", str(tmp_path / "gone.wav"), str(tmp_path / "good.wav"),
                str(tmp_path / "junk.wav"), "-c", str(config), "-o", str(tmp_path / "o"))
    assert r.returncode == 1, r.stderr
    assert f"{tmp_path / 'gone.wav'}: no such file or folder" in r.stderr
    assert "2 of 3 input(s) failed" in r.stderr and "Traceback" not in r.stderr
    assert len(read_selection_table(tmp_path / "o" / "good.selections.txt")) == 1


@pytest.mark.slow
def test_ctrl_c_names_the_complete_tables_and_leaves_no_partial_one(tmp_path: Path,
                                                                    config: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for k in range(4):
        sf.write(data / f"f{k}.wav", tone_in_noise(8000, 120, [(30.2, 31.8, 150.0)],
                                                   channels=16, seed=k), 8000)
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "pamlive", "analyze", str(data), "-c",
                             str(config), "-o", str(out)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "f0.selections.txt").exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    tables = sorted(out.iterdir())
    assert len(tables) < 4, "the run ended before it was interrupted; use longer files"
    assert not [t for t in tables if not t.name.endswith(".selections.txt")]
    assert f"interrupted: {len(tables)} table(s) complete" in err
    assert f"no table for {4 - len(tables)} input(s) from {data / f'f{len(tables)}.wav'} on" \
        in err
    for t in tables:
        assert f"complete: {t}" in err
        assert len(read_selection_table(t)) == 1
    assert "Traceback" not in err


def test_a_truncated_input_leaves_no_table_and_is_not_listed(tmp_path: Path,
                                                            config: Path) -> None:
    """A recording cut short (header announces more than is there) is a failed input: one
    line, exit 1, no table (not even an earlier run's), not listed; the others go on."""
    sf.write(tmp_path / "good.wav", tone_in_noise(8000, 20, [(8.2, 9.8, 150.0)]), 8000)
    sf.write(tmp_path / "cut.wav", tone_in_noise(8000, 20, [(4.2, 5.8, 150.0)]), 8000,
             subtype="PCM_16")
    whole = (tmp_path / "cut.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])  # the tone is before the cut
    out = tmp_path / "o"
    out.mkdir()
    (out / "cut.selections.txt").write_text("an earlier run's table\n")
    r = pamlive("analyze", str(tmp_path / "good.wav"), str(tmp_path / "cut.wav"), "-c",
                str(config), "-o", str(out))
    assert r.returncode == 1, r.stderr
    assert f"{tmp_path / 'cut.wav'}: truncated: header announces 160000 frames" in r.stderr
    assert "1 of 2 input(s) failed" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good.selections.txt"]
    assert r.stdout.splitlines() == [
        f"{tmp_path / 'good.wav'}: 1 detection(s) -> {out / 'good.selections.txt'}"]
