"""``pamlive analyze`` input handling: names of tables, missing inputs, interruption."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone_in_noise

from pamlive.raven import read_selection_table, table_paths


def pamlive(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pamlive", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture()
def config(tmp_path: Path, tonal_package: Path) -> Path:
    p = tmp_path / "tonal.toml"
    p.write_text(f'[model]\npath = "{tonal_package}"\nhop_s = 1.0\nmax_merge = 10\n')
    return p


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
