"""Command-line options of daily use: shipped configs, a second monitor's replay port."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from pamlive.builtin import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]


def pamlive(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pamlive", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_config_show_prints_the_shipped_file(tmp_path: Path) -> None:
    assert pamlive("config", "list").stdout.split() == ["builtin:bats", "builtin:demo",
                                                       "builtin:narw"]
    for name in ("narw", "demo", "bats"):
        shown = pamlive("config", "show", f"builtin:{name}", cwd=tmp_path).stdout
        assert shown == (CONFIG_DIR / f"{name}.toml").read_text(encoding="utf-8")
        # the README's top-level configs/ is the same file, not a copy
        assert (REPO / "configs" / f"{name}.toml").resolve() == \
            (CONFIG_DIR / f"{name}.toml").resolve()
    r = pamlive("config", "show", "builtin:nope")
    assert r.returncode == 2 and "no built-in config 'nope' (have: bats, demo, narw)" in r.stderr
    r = pamlive("analyze", "x.wav", "-c", "builtin:nope", "-o", str(tmp_path))
    assert r.returncode == 2 and "no built-in config 'nope'" in r.stderr


def test_replay_flag_moves_the_replay_server(tmp_path: Path) -> None:
    replay = f"ipc://{tmp_path}/replay"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pamlive", "demo", "-c", "builtin:demo", "--headless",
         "--duration", "20", "--publish", f"ipc://{tmp_path}/pub", "--replay", replay],
        stderr=subprocess.PIPE, text=True)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.connect(replay)
    try:
        sock.send(json.dumps({"id": "x", "limit": 1}).encode())
        deadline = time.monotonic() + 60
        while not sock.poll(100):
            assert time.monotonic() < deadline and proc.poll() is None, "no replay server"
        reply = json.loads(sock.recv())
    finally:
        sock.close(linger=0)
        ctx.term()
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert reply["ok"] and reply["id"] == "x", reply
    assert proc.returncode == 0, err


@pytest.mark.slow
def test_each_threshold_flag_has_one_meaning(tmp_path: Path) -> None:
    """`--threshold` is the window-score threshold of every detecting class;
    `--detection-threshold` an event model's call threshold (`--threshold` meant that too
    for event models: docs/contracts.md keeps it, deprecated). Misuse is one line."""
    ensemble = tmp_path / "ensemble.toml"
    ensemble.write_text('[[model.members]]\npath = "builtin:narw"\n'
                        '[[model.members]]\npath = "builtin:narw"\n', encoding="utf-8")
    for config, flags, needle in (
            ("builtin:narw", ["--detection-threshold", "0.5"],
             "detection_threshold is an event model's (calls) threshold"),
            (str(ensemble), ["--threshold", "0.5"], "--threshold does not apply to an ensemble"),
            ("builtin:narw", ["--detection-threshold", "1.5"],
             "--detection-threshold must be in 0..1, got 1.5")):
        r = pamlive("analyze", "x.wav", "-c", config, "-o", str(tmp_path / "out"), *flags)
        assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not (tmp_path / "out").exists()
