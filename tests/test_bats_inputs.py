"""Bats as a field user meets them: a recording whose rate cannot hold a bat call is said
to be so (not analysed silently to no calls), and ``builtin:bats`` finds the imported
model where the docs say to put it (docs/bats.md, "Install")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

BELOW_BAND = ("sample rate 8000 Hz holds frequencies up to 4000 Hz only, below the model's "
              "band (10000-120000 Hz; it needs a rate over 20000 Hz)")


def pamlive(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pamlive", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


@pytest.fixture()
def phone_recording(tmp_path: Path) -> Path:
    """Five seconds at 8 kHz: a phone or a right whale recorder, not a bat detector."""
    noise = np.random.default_rng(0).standard_normal(8000 * 5).astype(np.float32) * 0.01
    sf.write(tmp_path / "phone.wav", noise, 8000)
    return tmp_path / "phone.wav"


@pytest.mark.slow
def test_analyze_names_a_recording_below_the_bat_band(bats_package_dir: Path, tmp_path: Path,
                                                      phone_recording: Path) -> None:
    config = tmp_path / "bats.toml"
    config.write_text(f'[model]\npath = "{bats_package_dir}"\n')
    r = pamlive("analyze", str(phone_recording), "-c", str(config), "-o", str(tmp_path / "o"))
    assert r.returncode == 1, r.stderr
    assert r.stderr.splitlines() == [f"pamlive: error: {phone_recording}: {BELOW_BAND}",
                                     "pamlive: 1 of 1 input(s) failed"]
    assert not list((tmp_path / "o").iterdir())


def test_live_refuses_a_recording_below_the_bat_band_before_any_work(
        bats_package_dir: Path, tmp_path: Path, phone_recording: Path) -> None:
    config = tmp_path / "bats.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[model]\npath = "{bats_package_dir}"\n'
                      f'[alerts]\npublish = "ipc://{tmp_path}/pub"\n'
                      f'replay = "ipc://{tmp_path}/replay"\n')
    r = pamlive("run", "-c", str(config), "--play", str(phone_recording), "--headless")
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"pamlive: error: {phone_recording}: {BELOW_BAND}"]


@pytest.mark.slow
def test_builtin_bats_finds_the_model_in_the_users_model_folder(
        bats_package_dir: Path, tmp_path: Path) -> None:
    """Imported once into ``$XDG_DATA_HOME/pamlive/models``, the package is found from any
    folder; missing there too, one line names both places and the command that makes it."""
    models = tmp_path / "xdg" / "pamlive" / "models"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    quiet = np.random.default_rng(1).standard_normal(256000).astype(np.float32) * 0.001
    sf.write(elsewhere / "night.wav", quiet, 256000)
    args = ("analyze", "night.wav", "-c", "builtin:bats", "-o", "out")
    r = pamlive(*args, cwd=elsewhere, env=env)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"pamlive: error: batdetect2-uk: model package not found here nor in {models} (make "
        f"it from your batdetect2 installation: pamlive import-model batdetect2 -o "
        f"{models / 'batdetect2-uk'})"]
    models.mkdir(parents=True)
    (models / "batdetect2-uk").symlink_to(bats_package_dir)
    r = pamlive(*args, cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "out" / "night.selections.txt").is_file()
