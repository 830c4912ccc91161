"""``pamlive sink webhook --validated-only`` on a demo run: an operator gives verdicts as
the detections come (confirmed, rejected, unsure in turn); the sink forwards exactly the
confirmed detections, each with its verdict, and nothing else but the monitor's state."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from itertools import cycle
from pathlib import Path

import pytest
from test_alerts_bridge import _webhook

from pamlive.alerts.client import AlertClient
from pamlive.alerts.log import read_all
from pamlive.alerts.operator import VerdictConnection, VerdictRefused, send_verdict

DEMO = Path(__file__).resolve().parents[1] / "pamlive" / "configs" / "demo.toml"


def _config(tmp_path: Path) -> Path:
    """The demo with a call every ~3 s (not ~10 s) played at twice real time, its data in
    ``tmp_path``: 10 s give 20 s of audio, the same calls in half the wait."""
    text = DEMO.read_text().replace("call_interval_s = 10.0", "call_interval_s = 3.0")
    text = text.replace('kind = "simulator"', 'kind = "simulator"\nspeed = 2.0')
    assert "call_interval_s = 3.0" in text and "speed = 2.0" in text
    path = tmp_path / "demo.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n' + text)
    return path


@pytest.mark.slow
def test_a_validated_only_sink_forwards_exactly_the_confirmed_detections(tmp_path):
    server, received = _webhook()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    publish, replay = f"ipc://{tmp_path}/pub", f"ipc://{tmp_path}/replay"
    demo = subprocess.Popen([sys.executable, "-m", "pamlive", "demo", "-c", str(_config(
        tmp_path)), "--headless", "--duration", "10", "--publish", publish, "--replay",
        replay], stderr=subprocess.DEVNULL)  # fmt: skip
    sink = subprocess.Popen([sys.executable, "-m", "pamlive", "sink", "webhook", url,
                             "--validated-only", "--publish", publish, "--replay", replay,
                             "--state", str(tmp_path / "sink.state")])  # fmt: skip
    verdicts = cycle(["confirmed", "rejected", "unsure"])
    confirmed: list[str] = []
    given: dict[str, str] = {}
    healths: list[dict] = []
    try:
        with AlertClient(publish, replay_endpoint=replay) as client, \
                VerdictConnection(replay, timeout_s=3.0) as monitor:
            while demo.poll() is None:
                for event in client.poll(100):
                    if event.kind == "message" and event.topic == "health":
                        healths.append((event.body or {})["validation"])
                    if event.alert != "detection" or event.body is None:
                        continue
                    verdict = next(verdicts)
                    try:
                        send_verdict(monitor, event.body["id"], verdict, operator="obs")
                    except VerdictRefused:  # the demo stopping as it closed this one
                        continue
                    given[event.body["id"]] = verdict
                    if verdict == "confirmed":
                        confirmed.append(event.body["id"])
        assert demo.wait() == 0
        deadline = time.monotonic() + 15
        while (len([r for r in received if "event" not in r]) < len(confirmed)
               and time.monotonic() < deadline):
            time.sleep(0.1)
        time.sleep(0.5)  # nothing more may follow
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=20)
        if demo.poll() is None:
            demo.kill()
        server.shutdown()
    assert len(given) >= 3 and confirmed, given  # the demo gave detections to judge
    forwarded = [r for r in received if "event" not in r]
    assert [r["id"] for r in forwarded] == confirmed
    assert all(r["schema"] == "pamlive.detection/1" and r["validation"]["verdict"]
               == "confirmed" and r["validation"]["operator"] == "obs" for r in forwarded)
    logged = {d["id"]: d for d in read_all(tmp_path / "data" / "detections.sqlite")}
    assert all(r == {**logged[r["id"]], "validation": r["validation"]} for r in forwarded)
    assert "gap" not in {r["event"] for r in received if "event" in r}
    # health says how the watch keeps up: none waits long, as each was judged at once
    assert max(h["verdicts"] for h in healths) >= len(given) - 1
    assert all(h["oldest_waiting_s"] is None or h["oldest_waiting_s"] < 30 for h in healths)
