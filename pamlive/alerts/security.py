"""Who may bind where: loopback by default, other interfaces only insecure-by-choice or CURVE.

An alert bus on a ship's network must not hand whale positions (or accept replay floods)
from anyone who plugs in, so exposure is opt-in and authenticated when possible.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from pamlive.errors import ConfigError

_LOCAL_TRANSPORTS = ("ipc://", "inproc://")


def _tcp_host(endpoint: str) -> str:
    return endpoint[len("tcp://") :].rsplit(":", 1)[0]


def refuse_ipv6(endpoint: str, what: str = "alert bus endpoint") -> None:
    """One line for an IPv6 address (``tcp://[::1]:5556``), before any work: the bus and
    pamlive's subscribers (dashboard, ``AlertClient``, bridges) use IPv4 sockets, which
    cannot bind such an address, nor receive from it."""
    if endpoint.startswith("tcp://") and ":" in _tcp_host(endpoint):
        port = endpoint.rsplit(":", 1)[-1]
        raise ConfigError(f"{what} {endpoint!r}: IPv6 addresses are not supported; use "
                          f"tcp://127.0.0.1:{port} on this machine, or an IPv4 address")


def is_loopback_endpoint(endpoint: str) -> bool:
    """True when a bind endpoint is reachable from this machine only."""
    if endpoint.startswith(_LOCAL_TRANSPORTS):
        return True
    if not endpoint.startswith("tcp://"):
        raise ConfigError(f"alert bus endpoint {endpoint!r}: only tcp://, ipc:// or inproc://")
    host = _tcp_host(endpoint).strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name: not provably loopback


@dataclass(frozen=True)
class CurveConfig:
    """Server secret certificate plus a directory of allowed client public certificates."""

    server_secret_file: Path
    clients_dir: Path

    def load_server_keys(self) -> tuple[bytes, bytes]:
        """(public, secret) Z85 keys from the server's secret certificate."""
        path = Path(self.server_secret_file)
        try:
            public, secret = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"alerts.curve_server_secret {path}: {e}") from e
        if secret is None:
            raise ConfigError(
                f"alerts.curve_server_secret {path}: a public certificate, need the .key_secret"
            )
        if not Path(self.clients_dir).is_dir():
            raise ConfigError(f"alerts.curve_clients {self.clients_dir}: not a directory")
        return public, secret


def check_bind_allowed(endpoint: str, *, allow_insecure: bool, curve: CurveConfig | None) -> None:
    refuse_ipv6(endpoint)
    if is_loopback_endpoint(endpoint) or allow_insecure or curve is not None:
        return
    raise ConfigError(
        f"alert bus endpoint {endpoint!r} is not loopback: set alerts.allow_insecure = true"
        " or configure CURVE keys (alerts.curve_server_secret, alerts.curve_clients)"
    )


class CurveServer:
    """Runs the ZAP authenticator for one context and makes sockets CURVE servers."""

    def __init__(self, context: zmq.Context, curve: CurveConfig) -> None:
        self._public, self._secret = curve.load_server_keys()
        self._auth = ThreadAuthenticator(context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(curve.clients_dir))

    def secure(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self._secret
        socket.curve_publickey = self._public
        socket.curve_server = True

    def stop(self) -> None:
        self._auth.stop()


def secure_client(
    socket: zmq.Socket, server_key: bytes | None, client_keypair: tuple[bytes, bytes] | None
) -> None:
    """Make a client socket a CURVE client when a server key is given."""
    if server_key is None:
        return
    if client_keypair is None:
        raise ConfigError("CURVE server key given without a client keypair")
    socket.curve_serverkey = server_key
    socket.curve_publickey, socket.curve_secretkey = client_keypair
