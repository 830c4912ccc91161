"""What says where the vessel was is its user's alone: the detection log, clips and archive
are created 0600 in 0700 folders whatever the umask, and the demo's default data folder is
private and per user (docs/field.md, "Who can read the data")."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pamlive.private import demo_data_dir


def demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    """``pamlive demo --headless`` on private bus endpoints, under a permissive umask."""
    return subprocess.run(
        [sys.executable, "-m", "pamlive", "demo", "--headless", "--publish",
         f"ipc://{tmp_path}/pub", "--replay", f"ipc://{tmp_path}/replay", *args],
        capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})},
        preexec_fn=lambda: os.umask(0o022))


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of ``folder`` and everything under it, by path below it."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for p in folder.rglob("*"):
        found[str(p.relative_to(folder))] = stat.S_IMODE(p.stat().st_mode)
    return found


@pytest.mark.slow
def test_log_clips_and_archive_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "demo.toml"
    config.write_text(f"""data_dir = "{data}"
[source]
kind = "simulator"
speed = 4.0
[simulator]
call_interval_s = 4.0
seed = 2013
[model]
path = "builtin:narw"
[clips]
pre_s = 1.0
post_s = 1.0
[archive]
enabled = true
min_free_percent = 0.0
""")
    r = demo(tmp_path, "-c", str(config), "--duration", "3.5")  # 14 s of audio at speed 4
    assert r.returncode == 0, r.stderr
    found = modes(data)
    assert "detections.sqlite" in found
    assert any(p.startswith("clips/") and p.endswith(".flac") for p in found), found
    assert any(p.startswith("archive/raw_") for p in found), found
    wrong = {p: oct(m) for p, m in found.items()
             if m != (0o700 if (data / p).is_dir() else 0o600)}
    assert not wrong, f"not owner-only: {wrong}"


@pytest.mark.slow
def test_the_demo_keeps_its_data_in_a_private_folder_of_its_user(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    r = demo(tmp_path, "--duration", "2", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert r.returncode == 0, r.stderr
    found = modes(runtime / "pamlive-demo")
    assert found["."] == 0o700 and found["detections.sqlite"] == 0o600


def test_without_a_runtime_folder_the_demo_folder_is_named_for_its_user(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # gettempdir() reads TMPDIR again
    assert demo_data_dir() == tmp_path / f"pamlive-demo-{os.getuid()}"


def test_a_demo_folder_planted_as_a_link_is_refused_in_one_line(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    (tmp_path / "elsewhere").mkdir()
    (runtime / "pamlive-demo").symlink_to(tmp_path / "elsewhere")
    r = demo(tmp_path, "--duration", "2", env={"XDG_RUNTIME_DIR": str(runtime)})
    assert r.returncode == 2
    assert r.stderr.strip() == (f"pamlive: error: data folder {runtime / 'pamlive-demo'} is a "
                                "link or another user's: remove it, or set data_dir in a "
                                "config (pamlive demo -c FILE)")
    assert not list((tmp_path / "elsewhere").iterdir())
