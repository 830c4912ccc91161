"""The package a user installs: sdist -> wheel -> a clean venv, run outside the source tree.

Checks the build prints no deprecation warning, the sdist carries what its tests and docs
need, the wheel carries LICENSE, the example configs and the doc figures, and the
installed ``pamlive`` analyses a file with ``-c builtin:narw`` and runs the demo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                               ".pytest_cache", ".ruff_cache", ".hypothesis", ".mypy_cache")


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
    return r


def test_wheel_in_a_clean_venv(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_SKIP)
    out = _run([sys.executable, "-c", "import setuptools.build_meta as b; "
                "print(b.build_sdist('dist'))"], cwd=src)
    sdist = src / "dist" / out.stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("LICENSE", "tests/conftest.py", "configs/narw.toml", "docs/accuracy.md",
                   "pamlive/models/narw/lodo_curve.png", "benchmarks/bench_analyze_memory.py"):
        assert needed in names, needed

    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w",
                  str(tmp_path / "wheels"), str(sdist)], cwd=tmp_path)
    log = out.stdout + out.stderr + built.stdout + built.stderr
    assert "deprecat" not in log.lower(), [ln for ln in log.splitlines() if "eprecat" in ln]
    wheel = next((tmp_path / "wheels").glob("pamlive-*.whl"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    py, pamlive = venv / "bin" / "python", venv / "bin" / "pamlive"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, timeout=600)
    shown = _run([str(py), "-m", "pip", "show", "-f", "pamlive"], cwd=tmp_path).stdout
    for f in ("licenses/LICENSE", "pamlive/configs/narw.toml", "pamlive/configs/demo.toml",
              "pamlive/models/narw/lodo_curve.png"):
        assert f in shown, f
    assert "License-Expression: GPL-3.0-or-later" in _run(
        [str(py), "-c", "import importlib.metadata as m; print(m.metadata('pamlive'))"],
        cwd=tmp_path).stdout

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(py), "-c", "import pamlive; print(pamlive.__file__)"], cwd=work).stdout
    assert str(venv) in where  # the installed package, not the source tree
    shown_cfg = _run([str(pamlive), "config", "show", "builtin:narw"], cwd=work).stdout
    assert shown_cfg == (REPO / "configs" / "narw.toml").read_text(encoding="utf-8")

    rng = np.random.default_rng(1)
    sf.write(work / "rec.wav", (0.01 * rng.standard_normal((2000 * 30, 2))).astype(np.float32),
             2000)
    r = _run([str(pamlive), "analyze", "rec.wav", "-c", "builtin:narw", "-o", "out"], cwd=work)
    assert (work / "out" / "rec.selections.txt").is_file(), r.stdout
    # its own sockets: the default ports 5556/5557 may be another monitor's; 3 s run the
    # installed model on live windows and stop (tests/test_demo_cli.py checks detections)
    r = _run([str(pamlive), "demo", "--headless", "--duration", "3", "--publish",
              f"ipc://{work}/pub", "--replay", f"ipc://{work}/replay"], cwd=work, timeout=120)
    assert "demo:" in r.stderr and "stopped:" in r.stderr
