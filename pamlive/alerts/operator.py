"""The operator's side of validation: send a verdict to the monitor that made a detection.

Any client (the dashboard, a fleet view, a script) holds one :class:`VerdictConnection`
per monitor and calls :func:`send_verdict`; the monitor decides whether this client may
(its CURVE key in the operators list), logs and publishes the verdict, and answers with
the published ``pamlive.validation/1`` body or a coded refusal (``VerdictRefused``).

    with VerdictConnection("tcp://127.0.0.1:5557") as monitor:
        send_verdict(monitor, detection_id, "confirmed", note="clear upcall")
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import zmq

from pamlive.alerts.security import secure_client
from pamlive.alerts.validation import VERDICTS


class VerdictRefused(Exception):
    """The monitor refused the verdict, or did not answer (``code`` ``no_reply``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code


class VerdictConnection:
    """A DEALER socket to a monitor's replay endpoint, where it takes verdicts."""

    def __init__(self, replay_endpoint: str, *, curve_server_key: bytes | None = None,
                 curve_client_keypair: tuple[bytes, bytes] | None = None,
                 timeout_s: float = 6.0) -> None:
        self.endpoint = replay_endpoint
        self.timeout_s = timeout_s
        self._curve = (curve_server_key, curve_client_keypair)
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None
        self._ids = itertools.count(1)

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """One round trip; a socket that timed out is replaced (a late reply is dropped)."""
        request = {**request, "id": next(self._ids)}
        sock = self._open()
        sock.send(json.dumps(request).encode())
        deadline = time.monotonic() + self.timeout_s
        while (left := deadline - time.monotonic()) > 0 and sock.poll(int(left * 1000) + 1):
            try:
                reply = json.loads(sock.recv())
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(reply, dict) and reply.get("id") == request["id"]:
                return reply
        sock.close(linger=0)
        self._socket = None
        raise VerdictRefused("no_reply", f"no answer from {self.endpoint} in "
                                         f"{self.timeout_s:.0f} s (monitor down, or this "
                                         "client's key refused)")

    def _open(self) -> zmq.Socket:
        if self._socket is None:
            self._socket = self._context.socket(zmq.DEALER)
            self._socket.linger = 0
            secure_client(self._socket, *self._curve)
            self._socket.connect(self.endpoint)
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> VerdictConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_verdict(connection: VerdictConnection, detection_id: str, verdict: str, *,
                 validated_class: str | None = None, operator: str | None = None,
                 note: str | None = None) -> dict[str, Any]:
    """Give a verdict (``confirmed``, ``rejected``, ``unsure``) on a detection; returns
    the published verdict. ``operator`` names you on a loopback monitor; with CURVE the
    monitor names you by your key. Raises :class:`VerdictRefused`."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    fields = {"detection_id": detection_id, "verdict": verdict, "class": validated_class,
              "operator": operator, "note": note}
    reply = connection.request({"validate": {k: v for k, v in fields.items()
                                             if v is not None}})
    if not reply.get("ok"):
        raise VerdictRefused(str(reply.get("code")), str(reply.get("error")))
    body = reply.get("validation")
    if not isinstance(body, dict):  # a monitor from before verdicts answers a query
        raise VerdictRefused("unsupported", f"{connection.endpoint} does not take verdicts")
    return body
