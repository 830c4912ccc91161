"""The monitor's side of validation: who may give verdicts, and what they said.

Why here and not in the dashboard: any client (a dashboard, a fleet view, a script)
sends a verdict to the monitor that made the detection, which decides once, for all of
them, who may (``Operators``: CURVE public keys), logs the verdict before publishing it
(through the bus, like a detection), and keeps the latest verdict per detection and the
detections still waiting for one (``VerdictStore``, for health). ``VerdictDesk`` answers
one request on the replay socket's thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq.auth

from pamlive.alerts.log import read_all
from pamlive.alerts.schema import VALIDATION_SCHEMA, parse_utc
from pamlive.alerts.validation import VerdictError, parse_verdict, validation_body
from pamlive.errors import ConfigError

log = logging.getLogger(__name__)

MAX_WAITING = 100_000  # detections tracked while waiting for a verdict (~10 MB)
PUBLISH_WAIT_S = 5.0  # a verdict not logged and sent by then is refused (not_published)
LOCAL_OPERATOR = "local"  # the operator named on a loopback bus when the client gives none


@dataclass(frozen=True)
class Operators:
    """The clients that may validate: Z85 CURVE public key -> operator name (the stem of
    its ``.key`` certificate in the ``[alerts] operators`` directory)."""

    keys: Mapping[bytes, str]

    @classmethod
    def load(cls, directory: Path) -> Operators:
        if not Path(directory).is_dir():
            raise ConfigError(f"alerts.operators {directory}: not a directory")
        keys = {}
        for path in sorted(Path(directory).glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as e:
                raise ConfigError(f"alerts.operators {path}: {e}") from e
            keys[public] = path.stem
        return cls(keys)


class _Pending:
    """A verdict handed to the bus, until the publisher thread has logged and sent it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.body: dict[str, Any] | None = None


class VerdictStore:
    """Latest verdict per detection and the detections waiting for one.

    Written by the bus's publisher thread as it logs detections and verdicts (and from
    the log at start, so a restart forgets nothing); read by health and the replay thread.
    """

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}  # detection id -> its latest verdict
        self._waiting: OrderedDict[str, float] = OrderedDict()  # id -> start epoch, oldest 1st
        self._max_waiting = max_waiting
        self._untracked = 0  # waiting detections pushed out of the bounded table
        self._verdicts = 0  # verdicts in the log (the history's length)
        self._refused = 0
        self._pending: dict[str, _Pending] = {}

    def load(self, path: Path) -> None:
        """Take the detections and verdicts already in the log, in log order."""
        for body in read_all(path, kinds=("detection", "validation")):
            self.record("validation" if body.get("schema") == VALIDATION_SCHEMA
                        else "detection", body)

    def record(self, kind: str, body: dict[str, Any]) -> None:
        """A detection or a verdict was logged and published (or read from the log)."""
        with self._lock:
            if kind == "detection" and isinstance(body.get("id"), str):
                if body["id"] not in self._latest:
                    self._waiting[body["id"]] = parse_utc(body["start_utc"]).timestamp()
                    while len(self._waiting) > self._max_waiting:
                        self._waiting.popitem(last=False)
                        self._untracked += 1
            elif kind == "validation":
                self._verdicts += 1
                self._latest[body["detection_id"]] = {k: v for k, v in body.items()
                                                      if k != "detection"}
                self._waiting.pop(body["detection_id"], None)
                pending = self._pending.pop(body.get("verdict_id", ""), None)
                if pending is not None:
                    pending.body = body
                    pending.done.set()

    def forget_before(self, epoch: float) -> None:
        """Retention pruned the log: detections that started before ``epoch`` wait no
        more (and the count of those pushed out of the table is reset: all were older)."""
        with self._lock:
            while self._waiting and next(iter(self._waiting.values())) < epoch:
                self._waiting.popitem(last=False)
            self._untracked = 0

    def expect(self, verdict_id: str) -> _Pending:
        """Be told when the verdict ``verdict_id`` has been logged and published."""
        pending = _Pending()
        with self._lock:
            self._pending[verdict_id] = pending
        return pending

    def forget(self, verdict_id: str) -> None:
        with self._lock:
            self._pending.pop(verdict_id, None)

    def latest(self, detection_id: str) -> dict[str, Any] | None:
        """The latest verdict on a detection (without its copy of the detection)."""
        with self._lock:
            return self._latest.get(detection_id)

    def count_refused(self) -> None:
        with self._lock:
            self._refused += 1

    def stats(self, now_epoch: float) -> dict[str, Any]:
        """Health's ``validation`` section: detections waiting for a verdict, the oldest
        one's age (from its start, sample clock), verdicts given, requests refused."""
        with self._lock:
            oldest = next(iter(self._waiting.values()), None)
            return {"waiting": len(self._waiting) + self._untracked,
                    "oldest_waiting_s": (None if oldest is None
                                         else round(max(0.0, now_epoch - oldest), 1)),
                    "verdicts": self._verdicts, "refused": self._refused}


@dataclass(frozen=True)
class VerdictDesk:
    """Decides one verdict request: who asks, for which detection; hands it to the bus.

    ``secured``: the bus is a CURVE server, so every peer has a key, and only the keys of
    ``operators`` may validate. Without CURVE, only a bus reachable from this machine
    alone (``local``) takes verdicts, as it serves everything else to anyone local.
    ``find_detection``: a detection's logged body by id; ``submit``: queue a verdict on
    the bus (False: it could not).
    """

    store: VerdictStore
    find_detection: Callable[[str], str | None]
    submit: Callable[[dict[str, Any]], bool]
    secured: bool
    local: bool
    operators: Operators | None

    def answer(self, request: object, user_id: bytes | None) -> dict[str, Any]:
        """The published verdict body; raises ``VerdictError`` (logged, counted) when
        refused, and then nothing changes."""
        try:
            return self._decide(request, user_id)
        except VerdictError as e:
            self.store.count_refused()
            who = user_id.decode("ascii", "replace") if user_id else "no key"
            log.warning("verdict refused [%s]: %s (client %s)", e.code, e, who)
            raise

    def _operator(self, claimed: str | None, user_id: bytes | None) -> str:
        if self.secured:
            name = self.operators.keys.get(user_id or b"") if self.operators else None
            if name is None:
                raise VerdictError("not_operator", "this client's key is not in the monitor's "
                                                   "operators list")
            return name
        if not self.local:
            raise VerdictError("not_operator", "this monitor takes verdicts over CURVE only "
                                               "(its bus is not loopback)")
        return claimed or LOCAL_OPERATOR

    def _decide(self, request: object, user_id: bytes | None) -> dict[str, Any]:
        verdict = parse_verdict(request)
        operator = self._operator(verdict["operator"], user_id)
        text = self.find_detection(verdict["detection_id"])
        if text is None:
            raise VerdictError("unknown_detection",
                               f"no detection {verdict['detection_id']!r} in the log")
        body = validation_body(json.loads(text), verdict, operator)
        pending = self.store.expect(body["verdict_id"])
        if not self.submit(body) or not pending.done.wait(PUBLISH_WAIT_S):
            self.store.forget(body["verdict_id"])
            raise VerdictError("not_published", "the monitor could not log and publish the "
                                                 "verdict (stopping, or its queue is full)")
        assert pending.body is not None  # set with done
        return pending.body
