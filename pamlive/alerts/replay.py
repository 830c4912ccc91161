"""Replay server: a ROUTER socket that answers "what did I miss?" from the durable log.

Requests and replies are one JSON frame each (REQ or DEALER peers both work). Anything
malformed or oversized gets an error reply; nothing a peer sends can stop the server.
A request with ``validate`` is an operator's verdict, not a query: it goes to the bus's
``VerdictDesk`` (``verdicts.py``) with the peer's CURVE key, and its reply carries the
published verdict (``validation``) or a coded refusal.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import zmq

from pamlive.alerts.log import MAX_PAGE, TABLES, LogReader, UnknownRunError
from pamlive.alerts.schema import parse_utc
from pamlive.alerts.validation import VerdictError
from pamlive.alerts.verdicts import VerdictDesk

REPLY_SCHEMA = "pamlive.replay/1"
MAX_REQUEST_BYTES = 64 * 1024
MAX_FRAME_BYTES = 1024 * 1024  # libzmq drops peers sending more (memory guard)
_REQUEST_KEYS = {"id", "after", "until", "since_utc", "limit", "kinds"}
_VERDICT_KEYS = {"id", "validate"}  # a verdict request (docs/alerts.md, "Validation")

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _position(value: Any, field: str) -> tuple[str, int]:
    if not isinstance(value, dict) or set(value) != {"run_id", "seq"}:
        raise BadRequest("bad_request", f"{field!r} must be {{'run_id': str, 'seq': int}}")
    run_id, seq = value["run_id"], value["seq"]
    if not isinstance(run_id, str) or not run_id or len(run_id) > 200:
        raise BadRequest("bad_request", f"{field}.run_id must be a non-empty string")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**62:
        raise BadRequest("bad_request", f"{field}.seq must be a non-negative integer")
    return run_id, seq


def parse_request(payload: bytes) -> dict[str, Any]:
    """Validate one request frame; returns the keyword arguments for ``LogReader.query``."""
    return query_of(load_request(payload))


def load_request(payload: bytes) -> dict[str, Any]:
    """One request frame as a JSON object (size and syntax checked)."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise BadRequest("too_large", f"request of {len(payload)} bytes > {MAX_REQUEST_BYTES}")
    try:
        request = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadRequest("bad_request", f"request is not UTF-8 JSON ({e})") from None
    if not isinstance(request, dict):
        raise BadRequest("bad_request", "request must be a JSON object")
    return request


def query_of(request: dict[str, Any]) -> dict[str, Any]:
    """A query request's keyword arguments for ``LogReader.query``."""
    unknown = set(request) - _REQUEST_KEYS
    if unknown:
        raise BadRequest("bad_request", f"unknown request fields {sorted(unknown)}")
    query: dict[str, Any] = {}
    if "after" in request:
        query["after"] = _position(request["after"], "after")
    if "until" in request:
        query["until"] = _position(request["until"], "until")
    if "since_utc" in request:
        try:
            query["since_epoch"] = parse_utc(request["since_utc"]).timestamp()
        except (ValueError, OverflowError) as e:  # year 1 at +01:00 is before year 1 UTC
            raise BadRequest("bad_request", f"since_utc: {e}") from None
    limit = request.get("limit", MAX_PAGE)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise BadRequest("bad_request", f"limit must be an integer in 1..{MAX_PAGE}")
    query["limit"] = limit
    if "kinds" in request:  # without it: detections only, under "detections" (as ever)
        kinds = request["kinds"]
        if (not isinstance(kinds, list) or not kinds
                or not all(isinstance(k, str) and k in TABLES for k in kinds)
                or len(set(kinds)) != len(kinds)):
            raise BadRequest("bad_request", f"kinds must be a list of distinct kinds of "
                                            f"{sorted(TABLES)}")
        query["kinds"] = tuple(kinds)
    return query


def _request_id(payload: bytes) -> Any:
    """The request's ``id`` if it can be read (echoed so a client can match replies)."""
    try:
        request = json.loads(payload)
        rid = request.get("id") if isinstance(request, dict) else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return rid if isinstance(rid, int | str) and len(str(rid)) <= 100 else None


def error_reply(request_id: Any, code: str, message: str) -> bytes:
    return json.dumps(
        {"schema": REPLY_SCHEMA, "id": request_id, "ok": False, "code": code, "error": message}
    ).encode()


def verdict_reply(request_id: Any, body: dict[str, Any]) -> bytes:
    return json.dumps({"schema": REPLY_SCHEMA, "id": request_id, "ok": True,
                       "validation": body}).encode()


def ok_reply(request_id: Any, bodies: list[str], more: bool, key: str = "detections") -> bytes:
    """Assembled from the logged JSON texts, so replayed bodies are byte-identical.

    ``key``: ``detections``, or ``messages`` when the request named its ``kinds``."""
    head = json.dumps({"schema": REPLY_SCHEMA, "id": request_id, "ok": True, "more": more})
    return (head[:-1] + f', "{key}": [' + ", ".join(bodies) + "]}").encode()


class ReplayServer:
    """Serves replay requests on its own thread with its own read connection."""

    def __init__(self, socket: zmq.Socket, reader: LogReader,
                 desk: VerdictDesk | None = None) -> None:
        self._socket = socket
        self._reader = reader
        self._desk = desk  # None: verdicts are unknown fields (bad_request), as before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pamlive-replay", daemon=True)
        self.requests = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; safe to call more than once, or before ``start``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()  # the thread closes the socket it owns
        else:
            self._socket.close(linger=0)
        self._reader.close()

    def answer(self, payload: bytes, user_id: bytes | None = None) -> bytes:
        """The reply frame for one request frame (``user_id``: the peer's CURVE public
        key, Z85, when the socket is a CURVE server); counts error replies."""
        request_id = _request_id(payload)
        try:
            request = load_request(payload)
            if "validate" in request and self._desk is not None:
                if set(request) - _VERDICT_KEYS:
                    raise BadRequest("bad_request", "a validate request takes only 'id'")
                return verdict_reply(request_id,
                                     self._desk.answer(request["validate"], user_id))
            query = query_of(request)
            bodies, more = self._reader.query(**query)
        except (BadRequest, VerdictError) as e:
            self.errors += 1
            return error_reply(request_id, e.code, str(e))
        except UnknownRunError as e:
            self.errors += 1
            return error_reply(request_id, "unknown_run", f"run_id {e.args[0]!r} is not in the log")
        return ok_reply(request_id, bodies, more, "messages" if "kinds" in query else "detections")

    def _handle(self, frames: list[bytes], user_id: bytes | None = None) -> None:
        envelope, rest = frames[:1], frames[1:]
        if len(rest) >= 2 and rest[0] == b"":  # REQ peer: identity, empty delimiter, body
            envelope, rest = frames[:2], frames[2:]
        self.requests += 1
        if len(rest) != 1:
            self.errors += 1
            reply = error_reply(None, "bad_request", f"expected 1 request frame, got {len(rest)}")
        else:
            reply = self.answer(rest[0], user_id)
        self._socket.send_multipart([*envelope, reply], flags=zmq.NOBLOCK)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stop.is_set():
            try:
                if not poller.poll(100):
                    continue
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
                self._handle([f.bytes for f in frames], _user_id(frames[-1]))
            except zmq.Again:
                continue
            except zmq.ContextTerminated:
                return
            except Exception:  # a bad request must never take replay down
                self.errors += 1
                log.exception("replay request failed")
        self._socket.close(linger=0)


def _user_id(frame: zmq.Frame) -> bytes | None:
    """The peer's CURVE public key (Z85) that ZAP authenticated, or None without CURVE."""
    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return user.encode("ascii") if isinstance(user, str) and user else None
