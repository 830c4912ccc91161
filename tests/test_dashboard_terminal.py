"""The dashboard on a real terminal (tmux) and in a recording console: an 80 x 24 screen
keeps its header and a usable spectrogram, the layout does not jump, a monitor that said
goodbye reads "stopped" while a vanished one reads "LOST", and frames are rationed."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq
from rich.console import Console
from test_dashboard import RUN, Seq, _detection, _fed_state, _health, _spectrum

from pamlive.alerts.client import BusEvent
from pamlive.dashboard import run_dashboard
from pamlive.dashboard.views import render

CLOCK = re.compile(r"\d\d:\d\d:\d\d UTC")


def screen(state, now: float, width: int = 80, height: int = 24) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO())
    console.print(render(state, now, height, width))
    return console.export_text().splitlines()


def test_80x24_keeps_run_id_clock_and_a_usable_spectrogram() -> None:
    state, _ = _fed_state()
    lines = screen(state, 1.2)
    assert len(lines) == 24
    assert f"run {RUN}" in lines[0] and CLOCK.search(lines[0])
    strip = [ln for ln in lines if "▀" in ln]
    assert len(strip) >= 12  # 24+ frequency pixels over 0..500 Hz
    assert min(ln.count("▀") for ln in strip) >= 35  # 4+ s of history
    assert "right_whale" in "\n".join(lines) and "levels" in "\n".join(lines)


def test_the_banner_does_not_move_the_screen() -> None:
    state, _ = _fed_state()
    with_alarm = screen(state, 1.2, 120, 40)
    state.alarm_until = 0.0
    without = screen(state, 30.0, 120, 40)
    assert "RIGHT WHALE" in with_alarm[1] and not without[1].strip()
    def rows(lines: list[str]) -> list[int]:
        return [i for i, ln in enumerate(lines) if "spectrogram" in ln or "detections (" in ln]
    assert rows(with_alarm) == rows(without)


def test_goodbye_reads_stopped_and_silence_reads_lost() -> None:
    state, seq = _fed_state()
    state.apply(BusEvent("message", "health", {**_health(seq()), "final": True}), 2.0)
    state.apply(BusEvent("lost", "heartbeat", {"run_id": RUN, "silent_s": 5.2}), 8.0)
    text = "\n".join(screen(state, 8.0, 120, 40))
    assert "MONITOR STOPPED" in text and "monitor stopped (said goodbye)" in text
    assert "LOST" not in text and " OK" not in text and "STOPPED" in text

    state, seq = _fed_state()
    state.apply(BusEvent("lost", "heartbeat", {"run_id": RUN, "silent_s": 5.2}), 8.0)
    text = "\n".join(screen(state, 8.0, 120, 40))
    assert "MONITOR LOST" in text and "LOST (1×)" in text
    assert " OK" not in text and "UNKNOWN" in text and "last report: ok" in text

    state, seq = _fed_state()
    state.apply(BusEvent("message", "health",
                         {**_health(seq(), "deaf"), "flags": ["pipeline_stopped"],
                          "final": True}), 2.0)
    text = "\n".join(screen(state, 2.0, 120, 40))
    assert "MONITOR FAILED" in text and "pipeline_stopped" in text


@pytest.mark.slow
def test_frames_are_rationed_while_traffic_flows() -> None:
    """Spectrum and health at the monitor's pace: about one frame a second, not four."""
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    terminal = io.StringIO()
    console = Console(width=160, height=48, file=terminal, force_terminal=True,
                      color_system="truecolor")
    stop = threading.Event()
    dash = threading.Thread(target=run_dashboard, args=(f"tcp://127.0.0.1:{port}",),
                            kwargs={"console": console, "stop_event": stop, "bell": False})
    dash.start()
    seq = Seq()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            pub.send_multipart([b"spectrum", json.dumps(_spectrum(seq())).encode()])
            if int((time.monotonic() - t0) * 8) % 8 == 0:
                pub.send_multipart([b"health", json.dumps(_health(seq())).encode()])
                pub.send_multipart([b"heartbeat", json.dumps({"run_id": RUN,
                                                              "seq": seq()}).encode()])
            time.sleep(0.125)
        urgent_at = terminal.getvalue().count("\x1b[H")
        pub.send_multipart([b"detection.right_whale", json.dumps(_detection(seq())).encode()])
        deadline = time.monotonic() + 0.5  # a detection is drawn at once, not at the tick
        while "0.93" not in terminal.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        drawn_fast = "0.93" in terminal.getvalue()
    finally:
        stop.set()
        dash.join(10)
        pub.close(linger=0)
    assert urgent_at <= 6  # 4 s at one frame a second (+ first and last); before: ~16
    assert drawn_fast


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_real_80x24_terminal_shows_a_clean_stop_then_a_crash(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/pub"
    session = f"pamlive-test-{os.getpid()}"
    demo = [sys.executable, "-m", "pamlive", "demo", "--headless", "--publish", endpoint,
            "--replay", f"ipc://{tmp_path}/replay"]
    env = {**os.environ, "TERM": "xterm-256color"}

    def capture() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                              capture_output=True, text=True, check=True).stdout

    def wait_screen(pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = capture()
            if pattern in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} not on screen:\n{capture()}")

    dashboard = f"{sys.executable} -m pamlive dashboard --connect {endpoint} --no-bell"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    dashboard], env=env, check=True)
    # 6 s: the header and the strip are drawn from the first heartbeat and spectrum rows
    first = subprocess.Popen([*demo, "--duration", "6"], stderr=subprocess.DEVNULL)
    second = None
    try:
        text = wait_screen("run 2", 60)
        top = text.splitlines()[0]
        assert CLOCK.search(top) and re.search(r"run \d{8}T\d{6}Z-", top), top
        text = wait_screen("now ▶", 30)
        assert sum("▀" in ln for ln in text.splitlines()) >= 12
        first.wait(60)
        text = wait_screen("MONITOR STOPPED", 15)
        time.sleep(6)  # past the heartbeat timeout: still "stopped", not "lost"
        text = capture()
        assert "MONITOR STOPPED" in text and "LOST" not in text and " OK" not in text

        second = subprocess.Popen(demo, stderr=subprocess.DEVNULL)
        wait_screen("connected", 60)
        second.send_signal(signal.SIGKILL)
        text = wait_screen("MONITOR LOST", 20)
        assert "UNKNOWN" in text and " OK " not in text and "STOPPED" not in text
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
