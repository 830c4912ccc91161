"""A zipped model package leaves no unpacked copy behind: at exit, after a kill, across
an in-place re-exec (same PID, no exit handlers)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tonal_package

# load the zip; with "exec", replace this image by a fresh one that loads it again
_SCRIPT = """
import os, sys
from pamlive.inference.package import load_model_package
package = load_model_package(sys.argv[1])
assert package.onnx_path.is_file()
print(os.getpid(), package.onnx_path, flush=True)
if sys.argv[2] == "exec":
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[3], sys.argv[1], "done", ""])
if sys.argv[2] == "hang":
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def zipped(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pkg")
    write_tonal_package(d / "tonal")
    return Path(shutil.make_archive(str(d / "tonal"), "zip", d, "tonal"))


def _run(zipped: Path, tmp: Path, mode: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SCRIPT, str(zipped), mode, _SCRIPT],
                          env={**os.environ, "TMPDIR": str(tmp)}, capture_output=True,
                          text=True, timeout=60, **kwargs)


def _left(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("pamlive-model-*"))


def test_unpacked_package_removed_at_exit(zipped: Path, tmp_path: Path) -> None:
    r = _run(zipped, tmp_path, "done")
    assert r.returncode == 0, r.stderr
    assert str(tmp_path) in r.stdout  # it was unpacked there
    assert _left(tmp_path) == []


def test_unpacked_package_removed_across_a_reexec(zipped: Path, tmp_path: Path) -> None:
    r = _run(zipped, tmp_path, "exec")
    assert r.returncode == 0, r.stderr
    (pid1, path1), (pid2, path2) = (line.split() for line in r.stdout.splitlines())
    assert pid1 == pid2 and path1 != path2  # the same process, two images
    assert _left(tmp_path) == []


@pytest.mark.slow
def test_a_killed_process_copy_is_removed_by_the_next_load(zipped: Path,
                                                            tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(zipped), "hang", ""],
                            env={**os.environ, "TMPDIR": str(tmp_path)},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    # a live process keeps its copy while another loads the package too
    assert len(_left(tmp_path)) == 1
    assert _run(zipped, tmp_path, "done").returncode == 0
    assert len(_left(tmp_path)) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_left(tmp_path)) == 1
    assert _run(zipped, tmp_path, "done").returncode == 0
    assert _left(tmp_path) == []
