"""Subscriber for the pamlive alert bus that never silently misses an alert.

This is the code a mitigation system (or the dashboard) runs: it subscribes to the bus,
notices gaps in ``seq``, late joins and monitor restarts, fetches the missing alerts
(onsets, detections, bearings, calls) from the monitor's replay socket before delivering newer
messages (so alerts arrive in order, each once), and turns heartbeat silence into
``lost``/``recovered`` events, told apart from a clean stop (``stopped``: the monitor's
last health or heartbeat said ``"final": true``). Nothing it receives can make it raise:
bad messages become ``malformed`` events.

    client = AlertClient("tcp://127.0.0.1:5556", replay_endpoint="tcp://127.0.0.1:5557")
    while True:
        for event in client.poll(200):
            if event.alert == "onset":        # a call has begun: act at once
                act_on(event.body)
            elif event.alert == "detection":  # the same call, closed (same "id")
                record(event.body)
            elif event.alert == "bearing":    # an array's direction for a detection
                locate(event.body)              # (same run_id, class and start_sample)
            elif event.alert == "call":       # an event model's call (bats): one per call
                count(event.body)
            elif event.alert == "validation": # an operator's verdict on a detection
                note_verdict(event.body)        # (body["detection_id"] is its "id")
"""

from __future__ import annotations

import itertools
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import zmq

from pamlive.alerts.schema import (
    BEARING_SCHEMA,
    CALL_SCHEMA,
    CALL_SUMMARY_SCHEMA,
    CALL_SUMMARY_TOPIC,
    ONSET_SCHEMA,
    VALIDATION_SCHEMA,
    bearing_topic,
    call_topic,
    detection_topic,
    logged_kind,
    onset_topic,
    utc_iso,
    validate_bearing,
    validate_call,
    validate_call_summary,
    validate_detection,
    validate_envelope,
    validate_onset,
)
from pamlive.alerts.security import secure_client
from pamlive.alerts.validation import validate_validation, validation_topic
from pamlive.errors import ConfigError

_MAX_DRAIN = 10000  # messages handled per poll, so poll() returns regularly under load
_REMEMBERED_RUNS = 64
_REPLAY_ATTEMPTS = 3
# what replay is asked for (a "kinds" request), newest first: a monitor from before
# verdicts refuses the first, from before bearings were logged the second, one from
# before calls the third, one from before onsets the fourth (then: detections only)
_REPLAY_KINDS = (["detection", "onset", "bearing", "call", "call_summary", "validation"],
                 ["detection", "onset", "bearing", "call", "call_summary"],
                 ["detection", "onset", "call", "call_summary"], ["detection", "onset"])

Position = tuple[str, int]  # (run_id, seq)
_LIVENESS = {"stopped": "stopped", "lost": "lost", "recovered": "ok"}


def _well_formed(reply: dict, key: str) -> bool:
    """An ok reply's page: a list of objects with a run_id and a seq to page on."""
    page = reply.get(key)
    return isinstance(page, list) and all(
        isinstance(d, dict) and isinstance(d.get("run_id"), str) and isinstance(d.get("seq"), int)
        for d in page
    )


@dataclass
class BusEvent:
    """One thing that happened on the bus, as seen by this subscriber.

    ``kind``: ``message`` (live), ``replayed`` (a missed alert, healed), ``stopped`` (the
    monitor said goodbye: ``body`` has ``run_id`` and ``reason``), ``lost`` / ``recovered``
    (silence without a goodbye, and traffic again after ``lost`` or ``stopped``),
    ``malformed`` (unreadable message), ``gap`` (missed alerts that could not be fetched;
    ``body`` holds the bounds).
    """

    kind: str
    topic: str
    body: dict | None
    error: str | None = None

    @property
    def alert(self) -> str | None:
        """``onset``, ``detection``, ``bearing``, ``call``, ``call_summary`` or
        ``validation`` (an operator's verdict) for an alert delivered (live or
        replayed), else None."""
        if self.kind not in ("message", "replayed"):
            return None
        return logged_kind(self.topic)

    @property
    def position(self) -> Position | None:
        """This alert's ``(run_id, seq)``: what to store once it has been acted on, and
        pass back as ``resume_after``. ``AlertClient.position`` is the newest alert *handed
        out*, which after a ``poll`` that returned several is ahead of the ones not yet
        acted on: a process killed between them would skip them on restart."""
        if self.alert is None or self.body is None:
            return None
        return self.body["run_id"], self.body["seq"]

    @property
    def liveness(self) -> str | None:
        """The monitor's state this event reports, for a bridge to forward: ``stopped``
        (a clean stop), ``lost`` (silence without a goodbye: killed, hung, link down) or
        ``ok`` (heard again); None for other events."""
        return _LIVENESS.get(self.kind)


class AlertClient:
    """Subscribe, heal gaps through replay, and report monitor liveness."""

    def __init__(
        self,
        endpoint: str,
        *,
        replay_endpoint: str | None = None,
        topics: tuple[str, ...] | list[str] = ("",),
        lost_after_s: float = 5.0,
        curve_server_key: bytes | None = None,
        curve_client_keypair: tuple[bytes, bytes] | None = None,
        since_utc: datetime | None = None,
        resume_after: Position | None = None,
        replay_timeout_s: float = 3.0,
    ) -> None:
        """``resume_after``: the ``position`` a previous client reached (resume a restart);
        ``since_utc``: on joining, also fetch detections that started at or after it.
        Without either, a late joiner gets the current run's earlier detections."""
        self._topics = tuple(topics)
        self._lost_after_s = lost_after_s
        self._replay_endpoint = replay_endpoint
        self._replay_timeout_ms = int(replay_timeout_s * 1000)
        self._curve = (curve_server_key, curve_client_keypair)
        self._since_utc = utc_iso(since_utc) if since_utc is not None else None
        self._resume_after = resume_after
        self._context = zmq.Context()
        self._dealer: zmq.Socket | None = None
        # Everything is subscribed internally: seq counts every topic, so filtering at the
        # socket would look like gaps. Topics are filtered on delivery instead.
        self._sub = self._context.socket(zmq.SUB)
        self._sub.linger = 0
        self._sub.rcvhwm = 100000
        secure_client(self._sub, *self._curve)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            self._sub.connect(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise ConfigError(f"alert client cannot connect to {endpoint!r}: {e.strerror}") from e
        self._request_ids = itertools.count(1)
        self._replay_kinds: list[str] | None = _REPLAY_KINDS[0]  # None: no "kinds" known
        self._run_id: str | None = None
        self._last_seq = 0
        self._delivered: OrderedDict[str, int] = OrderedDict()  # run_id -> max alert seq
        if resume_after is not None:
            self._delivered[resume_after[0]] = resume_after[1]
        self.position: Position | None = resume_after
        self._last_heard = time.monotonic()
        self._lost = False
        self._stopped: str | None = None  # the run that said goodbye, until another is heard

    # -- public ---------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 100) -> list[BusEvent]:
        """Wait up to ``timeout_ms`` for traffic; return every event since the last call."""
        events: list[BusEvent] = []
        if self._sub.poll(timeout_ms):
            for _ in range(_MAX_DRAIN):
                try:
                    frames = self._sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_frames(frames, events)
        silent = time.monotonic() - self._last_heard
        if not self._lost and self._stopped is None and silent > self._lost_after_s:
            self._lost = True
            events.append(
                BusEvent("lost", "heartbeat", {"run_id": self._run_id, "silent_s": silent})
            )
        return events

    def close(self) -> None:
        if self._dealer is not None:
            self._dealer.close(linger=0)
            self._dealer = None
        self._sub.close(linger=0)
        self._context.term()

    def __enter__(self) -> AlertClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- live messages ----------------------------------------------------------------------

    def _wanted(self, topic: str) -> bool:
        return any(topic.startswith(t) for t in self._topics)

    def _on_frames(self, frames: list[bytes], events: list[BusEvent]) -> None:
        now = time.monotonic()
        silent = now - self._last_heard
        if self._lost:
            self._lost = False
            events.append(BusEvent("recovered", "heartbeat", {"silent_s": silent}))
        self._last_heard = now
        if len(frames) != 2:
            events.append(BusEvent("malformed", "", None, f"expected 2 frames, got {len(frames)}"))
            return
        try:
            topic = frames[0].decode("ascii")
            body = json.loads(frames[1].decode("utf-8"))
            validate_envelope(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            events.append(BusEvent("malformed", frames[0].decode("ascii", "replace"), None, str(e)))
            return
        run_id, seq = body["run_id"], body["seq"]
        if self._stopped is not None and run_id != self._stopped:  # a new run after a stop
            self._stopped = None
            events.append(BusEvent("recovered", "heartbeat", {"silent_s": silent,
                                                              "run_id": run_id}))
        events.extend(self._heal_before(run_id, seq))
        if run_id != self._run_id:
            self._run_id, self._last_seq = run_id, 0
        self._last_seq = max(self._last_seq, seq)
        if logged_kind(topic) is not None:
            self._deliver_alert("message", topic, body, events)
        elif self._wanted(topic):
            events.append(BusEvent("message", topic, body))
        if (topic in ("health", "heartbeat") and body.get("final") is True
                and self._stopped != run_id):
            self._stopped = run_id  # a goodbye: its silence from now on is no loss
            events.append(BusEvent("stopped", topic, {"run_id": run_id,
                                                      "reason": body.get("stop_reason")}))

    def _deliver_alert(self, kind: str, topic: str, body: Any, events: list) -> None:
        """An alert (onset, detection, bearing, call, call summary): checked, de-duplicated by
        (run_id, seq), delivered."""
        try:
            _check_alert(topic, body)
        except ValueError as e:
            events.append(
                BusEvent("malformed", topic, body if isinstance(body, dict) else None, str(e))
            )
            return
        run_id, seq = body["run_id"], body["seq"]
        if seq <= self._delivered.get(run_id, 0):
            return  # already delivered (live and replayed overlap)
        self._delivered[run_id] = seq
        self._delivered.move_to_end(run_id)
        while len(self._delivered) > _REMEMBERED_RUNS:
            self._delivered.popitem(last=False)
        self.position = (run_id, seq)
        if self._wanted(topic):
            events.append(BusEvent(kind, topic, body))

    # -- healing ----------------------------------------------------------------------------

    def _heal_before(self, run_id: str, seq: int) -> list[BusEvent]:
        """Replay the alerts missed before message ``(run_id, seq)``, if any."""
        since = None
        if self._run_id is None:  # first message: late join, resume or since_utc
            since = self._since_utc if self._resume_after is None else None
            after = self._resume_after or (None if since else (run_id, 0))
        elif run_id == self._run_id:
            if seq <= self._last_seq + 1:
                return []
            after = (run_id, self._last_seq)
        else:  # the monitor restarted: the rest of the old run and the start of the new
            after = (self._run_id, self._last_seq)
        if after is not None and after[0] == run_id and after[1] >= seq - 1:
            return []
        return self._replay(after=after, until=(run_id, seq), since=since)

    def _replay(self, *, after: Position | None, until: Position, since: str | None) -> list:
        events: list[BusEvent] = []
        bounds = {"after": after, "until": until, "since_utc": since}
        if self._replay_endpoint is None:
            return [BusEvent("gap", "", bounds, "missed alerts; no replay endpoint")]
        while True:
            request: dict[str, Any] = {"until": {"run_id": until[0], "seq": until[1]}}
            if after is not None:
                request["after"] = {"run_id": after[0], "seq": after[1]}
            if since is not None:
                request["since_utc"] = since
            if self._replay_kinds is not None:
                request["kinds"] = self._replay_kinds
            reply, error = self._request(request)
            if reply is None and self._replay_kinds is not None and "kinds" in str(error):
                self._replay_kinds = _older_kinds(self._replay_kinds)  # an older monitor
                continue
            if reply is None:
                events.append(BusEvent("gap", "", bounds, error))
                return events
            page = reply[self._page_key]
            for body in page:
                self._deliver_alert("replayed", _topic_of(body), body, events)
            if not reply.get("more") or not page:
                return events
            after = (page[-1]["run_id"], page[-1]["seq"])

    @property
    def _page_key(self) -> str:
        return "messages" if self._replay_kinds is not None else "detections"

    def _request(self, request: dict) -> tuple[dict | None, str | None]:
        """One replay round trip with retries (lazy pirate: a fresh socket per retry)."""
        error = "replay: no reply"
        for _ in range(_REPLAY_ATTEMPTS):
            request["id"] = next(self._request_ids)
            dealer = self._replay_socket()
            dealer.send(json.dumps(request).encode())
            deadline = time.monotonic() + self._replay_timeout_ms / 1000
            while (left := deadline - time.monotonic()) > 0:
                if not dealer.poll(int(left * 1000) + 1):
                    break
                try:
                    reply = json.loads(dealer.recv())
                except (ValueError, UnicodeDecodeError) as e:
                    return None, f"replay: unreadable reply ({e})"
                if not isinstance(reply, dict) or reply.get("id") != request["id"]:
                    continue  # a late answer to an earlier, timed-out request
                if not reply.get("ok"):
                    return None, f"replay refused: {reply.get('error')}"
                if not _well_formed(reply, self._page_key):
                    return None, "replay: malformed reply"
                return reply, None
            dealer.close(linger=0)
            self._dealer = None
            error = f"replay: no reply from {self._replay_endpoint}"
        return None, error

    def _replay_socket(self) -> zmq.Socket:
        if self._replay_endpoint is None:
            raise RuntimeError("no replay endpoint to ask")  # callers check it first
        if self._dealer is None:
            self._dealer = self._context.socket(zmq.DEALER)
            self._dealer.linger = 0
            secure_client(self._dealer, *self._curve)
            self._dealer.connect(self._replay_endpoint)
        return self._dealer


def _older_kinds(kinds: list[str]) -> list[str] | None:
    """The replay kinds a monitor that refused ``kinds`` may know (None: no "kinds")."""
    later = _REPLAY_KINDS[_REPLAY_KINDS.index(kinds) + 1:] if kinds in _REPLAY_KINDS else ()
    return later[0] if later else None


_VALIDATORS = {"detection": validate_detection, "onset": validate_onset,
               "bearing": validate_bearing, "call": validate_call,
               "call_summary": validate_call_summary, "validation": validate_validation}


def _check_alert(topic: str, body: Any) -> None:
    """Raise ``ValueError`` unless ``body`` is a valid alert of the kind ``topic`` names,
    on the topic its class (a call's species) gives."""
    kind = logged_kind(topic) or "detection"  # the least a replayed body can claim to be
    _VALIDATORS[kind](body)
    if topic != _topic_of(body):
        what = "species" if kind == "call" else "class"
        raise ValueError(f"topic {topic!r} does not match {what} {body[what]!r}")


def _topic_of(body: Any) -> str:
    """The topic a logged alert body was published on."""
    if not isinstance(body, dict):
        return ""
    schema = body.get("schema")
    if schema == CALL_SCHEMA:
        return call_topic(str(body.get("species")))
    if schema == CALL_SUMMARY_SCHEMA:
        return CALL_SUMMARY_TOPIC
    if schema == BEARING_SCHEMA:
        return bearing_topic(str(body.get("class")))
    if schema == VALIDATION_SCHEMA:
        return validation_topic(str(body.get("class")))
    topic = onset_topic if schema == ONSET_SCHEMA else detection_topic
    return topic(str(body.get("class")))
