"""examples/webhook_bridge.py end to end: simulator -> bridge process -> local HTTP server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pamlive.alerts.log import read_all
from pamlive.alerts.simulate import spawn

BRIDGE = Path(__file__).resolve().parents[1] / "examples" / "webhook_bridge.py"


def _webhook() -> tuple[ThreadingHTTPServer, list[dict]]:
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.mark.slow
def test_webhook_bridge_posts_every_alert_once_across_its_own_restart(tmp_path):
    server, received = _webhook()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    log = tmp_path / "log.db"
    sim, ready = spawn(
        ["--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*", "--log", str(log),
         "--rate", "20", "--count", "60", "--linger-s", "30", "--onsets"]
    )  # fmt: skip
    bridge_cmd = [sys.executable, str(BRIDGE), url, "--publish", ready["publish"],
                  "--replay", ready["replay"], "--state", str(tmp_path / "state.json")]  # fmt: skip
    try:
        bridge = subprocess.Popen(bridge_cmd)
        time.sleep(1.5)
        bridge.send_signal(signal.SIGKILL)  # the bridge dies mid-run...
        bridge.wait()
        time.sleep(0.5)
        bridge = subprocess.Popen(bridge_cmd)  # ...and resumes from its state file
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(received) < 120:
            time.sleep(0.1)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait()
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.communicate(timeout=20)
        server.shutdown()
    alerts = [r for r in received if "event" not in r]
    assert len(alerts) >= 120
    # at-least-once across a SIGKILL: an alert posted just before the kill, before the
    # state file was written, may come twice; none may be missing and order is kept
    unique = list(dict.fromkeys((d["run_id"], d["seq"]) for d in alerts))
    logged = read_all(log, kinds=("detection", "onset"))
    assert unique == [(b["run_id"], b["seq"]) for b in logged]
    assert len(alerts) - len(unique) <= 1
    # each onset is forwarded before its detection, which carries the same id
    schemas = [b["schema"] for b in logged]
    assert schemas == ["pamlive.onset/1", "pamlive.detection/1"] * 60
    assert [b["id"] for b in logged[::2]] == [b["id"] for b in logged[1::2]]


def _wait(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_webhook_bridge_tells_a_clean_stop_from_a_kill(tmp_path):
    """issue 25 (1): SIGTERM is "stopped" (with its reason), never "lost"; kill -9 is "lost"."""
    server, received = _webhook()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    sim_argv = ["--publish", f"ipc://{tmp_path}/pub", "--replay", f"ipc://{tmp_path}/replay",
                "--log", str(tmp_path / "log.db"), "--rate", "5"]  # fmt: skip
    lost_after_s = 1.0
    states = lambda: [r for r in received if "event" in r]  # noqa: E731
    sim, ready = spawn(sim_argv)
    bridge = subprocess.Popen([sys.executable, str(BRIDGE), url, "--publish", ready["publish"],
                               "--replay", ready["replay"], "--state", str(tmp_path / "state"),
                               "--lost-after-s", str(lost_after_s)])  # fmt: skip
    try:
        _wait(lambda: any("event" not in r for r in received))  # the bridge is connected
        sim.send_signal(signal.SIGTERM)  # a clean stop
        sim.communicate(timeout=20)
        _wait(lambda: states())
        time.sleep(3 * lost_after_s)  # the silence after a goodbye: no "lost" may follow
        sim, _ = spawn(sim_argv)  # the monitor starts again ...
        _wait(lambda: len(states()) >= 2)
        sim.kill()  # ... and is killed
        sim.wait()
        _wait(lambda: len(states()) >= 3)
    finally:
        if sim.poll() is None:
            sim.kill()
        bridge.kill()
        bridge.wait()
        server.shutdown()
    assert [r["event"] for r in states()] == ["stopped", "recovered", "lost"]
    assert states()[0]["detail"]["reason"] == "sigterm"
