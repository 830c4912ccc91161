"""Loopback by default; CURVE serves allowed keys only; `pamlive keys` makes keypairs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from pamlive.alerts.bus import AlertBus
from pamlive.alerts.client import AlertClient
from pamlive.alerts.keys import main as keys_main
from pamlive.alerts.security import is_loopback_endpoint
from pamlive.alerts.simulate import spawn
from pamlive.errors import ConfigError


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5556", True),
        ("tcp://127.3.2.1:5556", True),
        ("tcp://[::1]:5556", True),
        ("tcp://localhost:5556", True),
        ("ipc:///tmp/pamlive.sock", True),
        ("tcp://*:5556", False),
        ("tcp://0.0.0.0:5556", False),
        ("tcp://192.168.1.20:5556", False),
        ("tcp://eth0:5556", False),
    ],
)
def test_loopback_detection(endpoint, loopback):
    assert is_loopback_endpoint(endpoint) is loopback


def test_other_interfaces_need_an_explicit_choice(tmp_path):
    with pytest.raises(ConfigError, match="allow_insecure"):
        AlertBus("tcp://0.0.0.0:*", station="s").start()
    with pytest.raises(ConfigError, match="allow_insecure"):
        AlertBus(
            "tcp://127.0.0.1:*",
            station="s",
            log_path=tmp_path / "l.db",
            replay_endpoint="tcp://*:*",
        ).start()
    with AlertBus("tcp://0.0.0.0:*", station="s", allow_insecure=True) as bus:
        assert bus.endpoint.startswith("tcp://0.0.0.0:")
    with pytest.raises(ConfigError, match="udp"):
        AlertBus("udp://127.0.0.1:1", station="s").start()


def test_a_port_in_use_is_a_clear_error():
    with AlertBus("tcp://127.0.0.1:*", station="s") as bus:
        second = AlertBus(bus.endpoint, station="s")
        with pytest.raises(ConfigError, match=re.escape(f"cannot bind {bus.endpoint}")):
            second.start()


def test_keys_command_writes_a_private_keypair_and_refuses_to_overwrite(tmp_path, capsys):
    assert keys_main([str(tmp_path / "k"), "--name", "monitor"]) == 0
    public, secret = zmq.auth.load_certificate(tmp_path / "k" / "monitor.key_secret")
    assert len(public) == len(secret) == 40  # Z85 of 32-byte keys
    assert zmq.auth.load_certificate(tmp_path / "k" / "monitor.key") == (public, None)
    assert stat.S_IMODE((tmp_path / "k" / "monitor.key_secret").stat().st_mode) == 0o600
    assert "monitor.key" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="already exists"):
        keys_main([str(tmp_path / "k"), "--name", "monitor"])
    with pytest.raises(ConfigError, match="name"):
        keys_main([str(tmp_path / "k"), "--name", "../evil"])


def _auth_failed(endpoint: str, kind: int, server_key: bytes, keypair: tuple[bytes, bytes]) -> bool:
    """Watch a raw CURVE client's handshake: True when the server rejects its key."""
    context = zmq.Context()
    sock = context.socket(kind)
    sock.curve_serverkey = server_key
    sock.curve_publickey, sock.curve_secretkey = keypair
    monitor = sock.get_monitor_socket()
    sock.connect(endpoint)
    failed = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not failed and monitor.poll(500):
        failed = recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    sock.disable_monitor()
    monitor.close(linger=0)
    sock.close(linger=0)
    context.term()
    return failed


@pytest.mark.slow
def test_curve_serves_allowed_keys_and_refuses_others(tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    allowed.mkdir()
    for name in ("server", "dashboard", "intruder"):
        assert keys_main([str(keys), "--name", name]) == 0
    shutil.copy(keys / "dashboard.key", allowed)
    server_key, _ = zmq.auth.load_certificate(keys / "server.key")
    dashboard = zmq.auth.load_certificate(keys / "dashboard.key_secret")
    intruder = zmq.auth.load_certificate(keys / "intruder.key_secret")
    proc, ready = spawn(
        ["--publish", "tcp://127.0.0.1:*", "--replay", "tcp://127.0.0.1:*",
         "--log", str(tmp_path / "log.db"), "--rate", "20", "--heartbeat-s", "0.2",
         "--curve-secret", str(keys / "server.key_secret"), "--curve-clients", str(allowed)]
    )  # fmt: skip
    try:
        time.sleep(1.0)  # join late, so the allowed client must also use replay
        clients = {
            "allowed": AlertClient(
                ready["publish"], replay_endpoint=ready["replay"], lost_after_s=3.0,
                curve_server_key=server_key, curve_client_keypair=dashboard,
            ),
            "intruder": AlertClient(
                ready["publish"], replay_endpoint=ready["replay"], lost_after_s=3.0,
                curve_server_key=server_key, curve_client_keypair=intruder,
            ),
            "plaintext": AlertClient(
                ready["publish"], replay_endpoint=ready["replay"], lost_after_s=3.0
            ),
        }  # fmt: skip
        events = {name: [] for name in clients}
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for name, client in clients.items():
                events[name] += client.poll(20)
        kinds = {name: {e.kind for e in ev} for name, ev in events.items()}
        assert {"message", "replayed"} <= kinds["allowed"]  # live and replay both served
        assert kinds["intruder"] == kinds["plaintext"] == {"lost"}  # nothing but silence
        assert _auth_failed(ready["publish"], zmq.SUB, server_key, intruder)
        assert _auth_failed(ready["replay"], zmq.DEALER, server_key, intruder)
        assert not _auth_failed(ready["replay"], zmq.DEALER, server_key, dashboard)
        for client in clients.values():
            client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert json.loads(out.strip().splitlines()[-1])["done"]


@pytest.mark.parametrize("command", [
    ["demo", "--headless", "--duration", "2", "--publish", "tcp://[::1]:5556"],
    ["demo", "--headless", "--duration", "2", "--replay", "tcp://[::1]:5556"],
    ["dashboard", "--duration", "2", "--connect", "tcp://[::1]:5556"],
])
@pytest.mark.slow
def test_an_ipv6_endpoint_is_refused_in_one_line_before_any_work(tmp_path, command):
    """IPv4 sockets cannot bind an IPv6 address nor receive from one: say so up front (it
    passed the loopback check, then failed to bind, or a dashboard waited in vain)."""
    r = subprocess.run([sys.executable, "-m", "pamlive", *command], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    what = "dashboard: --connect" if command[0] == "dashboard" else "alert bus endpoint"
    assert r.stderr.strip().splitlines() == [
        f"pamlive: error: {what} 'tcp://[::1]:5556': IPv6 addresses are not supported; "
        "use tcp://127.0.0.1:5556 on this machine, or an IPv4 address"]
