"""Which monitors the dashboard watches, and how to reach each: endpoints and CURVE keys.

A station comes from a ``--connect [NAME=]ENDPOINT`` (with ``--replay`` and
``--server-key`` given once per ``--connect``, in the same order) or from a ``[fleet]``
table in a TOML file, one sub-table per station. The :class:`Station` is also what a
client call to that monitor (e.g. a verdict) needs: its endpoints and keys.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq.auth

from pamlive.alerts.security import refuse_ipv6
from pamlive.errors import ConfigError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_STATION_KEYS = frozenset({"connect", "replay", "server_key", "client_key"})

Keypair = tuple[bytes, bytes]


@dataclass(frozen=True)
class Station:
    """One monitor as the dashboard reaches it. ``name`` None: the monitor's own
    ``station`` field names it once heard (the endpoint until then)."""

    endpoint: str
    name: str | None = None
    replay: str | None = None
    server_key: bytes | None = None  # the monitor's CURVE public key
    client_keypair: Keypair | None = None  # this operator's CURVE keypair


def check_endpoint(endpoint: str, what: str) -> None:
    """One line for an endpoint the bus cannot use, before any socket is made."""
    if "://" not in endpoint:
        raise ConfigError(f"dashboard: {what} must be a ZeroMQ endpoint like "
                          f"tcp://host:5556, got {endpoint!r}")
    refuse_ipv6(endpoint, f"dashboard: {what}")


def load_curve(server: Path | None, client: Path | None,
               what: str = "--server-key/--client-key") -> tuple[bytes | None, Keypair | None]:
    """The monitor's public key and this client's keypair from ``pamlive keys`` files."""
    if server is None and client is None:
        return None, None
    if server is None or client is None:
        raise ConfigError(f"dashboard: CURVE needs both keys ({what})")
    try:
        server_public, _ = zmq.auth.load_certificate(server)
        client_public, client_secret = zmq.auth.load_certificate(client)
    except (OSError, ValueError) as e:
        raise ConfigError(f"dashboard: cannot read CURVE certificate: {e}") from None
    if client_secret is None:
        raise ConfigError(f"dashboard: client key {client} is a public certificate; "
                          "give the .key_secret")
    return server_public, (client_public, client_secret)


def _per_station(values: list[Any] | None, count: int, option: str,
                 shared: bool = False) -> list[Any]:
    """An option given once per ``--connect`` (or, if ``shared``, once for all)."""
    if not values:
        return [None] * count
    if len(values) == count:
        return list(values)
    if shared and len(values) == 1:
        return values * count
    raise ConfigError(f"dashboard: give {option} once per --connect ({count}), "
                      f"in the same order; got {len(values)}")


def stations_from_args(connects: list[str] | None, replays: list[str] | None = None,
                       server_keys: list[Path] | None = None,
                       client_key: Path | None = None) -> list[Station]:
    """``--connect [NAME=]ENDPOINT`` (repeatable) and its per-station options."""
    connects = connects or [DEFAULT_ENDPOINT]
    replays = _per_station(replays, len(connects), "--replay")
    servers = _per_station(server_keys, len(connects), "--server-key", shared=True)
    stations = []
    for connect, replay, server in zip(connects, replays, servers, strict=True):
        prefix = connect.split("://", 1)[0]
        name, endpoint = connect.split("=", 1) if "=" in prefix else ("", connect)
        if name and not _NAME.match(name):
            raise ConfigError(f"dashboard: --connect station name {name!r}: use letters, "
                              "digits, '.', '_' or '-'")
        check_endpoint(endpoint, "--connect")
        if replay is not None:
            check_endpoint(replay, "--replay")
        server_key, keypair = load_curve(server, client_key)
        stations.append(Station(endpoint, name or None, replay, server_key, keypair))
    _unique(stations)
    return stations


def stations_from_toml(path: Path) -> list[Station]:
    """The ``[fleet]`` table of ``path``: ``[fleet.NAME]`` with ``connect`` (required),
    ``replay``, ``server_key`` and ``client_key`` (paths relative to the file)."""
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f).get("fleet")
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"dashboard: cannot read --fleet {path}: {e}") from None
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"dashboard: {path} has no [fleet.NAME] station tables")
    stations = []
    for name, entry in table.items():
        where = f"{path} [fleet.{name}]"
        if not isinstance(entry, dict) or not _NAME.match(name):
            raise ConfigError(f"dashboard: {where} must be a table named with letters, "
                              "digits, '.', '_' or '-'")
        unknown = set(entry) - _STATION_KEYS
        if unknown:
            raise ConfigError(f"dashboard: {where}: unknown key(s) {', '.join(sorted(unknown))}")
        if not all(isinstance(v, str) for v in entry.values()) or "connect" not in entry:
            raise ConfigError(f"dashboard: {where} needs connect = \"tcp://host:port\" "
                              "(and only strings)")
        check_endpoint(entry["connect"], f"{where} connect")
        if "replay" in entry:
            check_endpoint(entry["replay"], f"{where} replay")
        server, client = (path.parent / entry[k] if k in entry else None
                          for k in ("server_key", "client_key"))
        server_key, keypair = load_curve(server, client, f"{where} server_key/client_key")
        stations.append(Station(entry["connect"], name, entry.get("replay"), server_key,
                                keypair))
    _unique(stations)
    return stations


def _unique(stations: list[Station]) -> None:
    """Two rows for one monitor, or one name for two, would mislead the operator."""
    for attr in ("endpoint", "name"):
        seen = [getattr(s, attr) for s in stations if getattr(s, attr) is not None]
        repeated = sorted({v for v in seen if seen.count(v) > 1})
        if repeated:
            raise ConfigError(f"dashboard: station {attr} given twice: {', '.join(repeated)}")
