"""Reviewing detections on the dashboard: the operator's place, typed text and verdicts.

Why apart from ``state.py``: the keys and what they mean are one concern (tested by
feeding keys), sending a verdict another (``pamlive.alerts.operator``), the screen a
third (``views.py`` reads ``Review``). A detection is chosen by its id, so new
detections arriving at the top of the list do not move the operator's choice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from pamlive.alerts.operator import VerdictConnection, VerdictRefused, send_verdict
from pamlive.dashboard.clipview import ClipRows, load_clip
from pamlive.dashboard.courier import VerdictCourier

UP, DOWN, ENTER, ESCAPE, BACKSPACE = "up", "down", "enter", "escape", "backspace"
VERDICT_KEYS = {"c": "confirmed", "r": "rejected", "u": "unsure"}
KEYS_HELP = "↑↓ choose  c confirm  r reject  u unsure  s species  n note  esc leave"
MAX_VERDICTS = 1000  # verdicts remembered for the list's marks
MAX_TYPED = 200


T = TypeVar("T")


class Row(Protocol):
    @property
    def id(self) -> str | None: ...

    @property
    def class_name(self) -> str: ...

    @property
    def clip(self) -> str | None: ...


@dataclass(frozen=True)
class Order:
    """A verdict the operator gave, to send to the monitor."""

    detection_id: str
    verdict: str
    validated_class: str | None
    note: str | None


@dataclass
class Review:
    """Which detection the operator has chosen, what they typed, and verdicts seen."""

    selected: str | None = None  # the chosen detection's id; None: not reviewing
    typing: str | None = None  # "species" or "note" while a text is typed
    text: str = ""
    species: str | None = None  # the correction for the next verdict
    note: str | None = None
    message: str = ""  # what became of the last verdict
    clip: ClipRows | str | None = None  # the chosen detection's clip, or why not shown
    verdicts: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)

    def on_validation(self, body: dict[str, Any]) -> None:
        """A ``validation.<class>`` message: the list marks its detection."""
        self.verdicts[str(body["detection_id"])] = {
            k: body.get(k) for k in ("verdict", "validated_class", "operator", "note")}
        self.verdicts.move_to_end(str(body["detection_id"]))
        while len(self.verdicts) > MAX_VERDICTS:
            self.verdicts.popitem(last=False)

    def key(self, key: str, rows: Sequence[Row]) -> Order | None:
        """Take one key; returns the verdict to send when the key gives one."""
        if self.typing is not None:
            self._type(key)
            return None
        ids = [row.id for row in rows if row.id is not None]
        if key in (UP, "k", DOWN, "j"):
            self._move(ids, -1 if key in (UP, "k") else 1)
        elif key == ESCAPE:
            self.selected, self.species, self.note = None, None, None
        elif self.selected is not None and key in ("s", "n"):
            self.typing, self.text = ("species" if key == "s" else "note"), ""
        elif self.selected is not None and key in VERDICT_KEYS:
            order = Order(self.selected, VERDICT_KEYS[key], self.species, self.note)
            self.species = self.note = None
            return order
        return None

    def _move(self, ids: list[str], step: int) -> None:
        if not ids:
            return
        if self.selected not in ids:  # start at the newest
            self.selected = ids[0]
            return
        index = min(max(ids.index(self.selected) + step, 0), len(ids) - 1)
        if index != ids.index(self.selected):
            self.species = self.note = None  # a correction belongs to one detection
        self.selected = ids[index]

    def _type(self, key: str) -> None:
        if key == ENTER:
            value = self.text.strip() or None
            if self.typing == "species":
                self.species = value
            else:
                self.note = value
            self.typing = None
        elif key == ESCAPE:
            self.typing = None
        elif key == BACKSPACE:
            self.text = self.text[:-1]
        elif len(key) == 1 and key.isprintable() and len(self.text) < MAX_TYPED:
            self.text += key

    def show_clip(self, rows: Sequence[Row], channel: int, fmax_hz: float) -> None:
        """Load the chosen detection's clip (once per clip) for the strip."""
        row = next((r for r in rows if r.id == self.selected), None)
        if row is None or row.clip is None:
            self.clip = None if row is None else "no clip saved for this detection"
        elif not (isinstance(self.clip, ClipRows) and self.clip.path == row.clip):
            self.clip = load_clip(row.clip, channel, fmax_hz)

    def help_line(self) -> str:
        """The keys line under the detections (or the text being typed)."""
        if self.typing is not None:
            return f"{self.typing}: {self.text}▏  (enter keep, esc drop)"
        extra = "".join(f"  {name} {value!r}" for name, value in
                        (("species", self.species), ("note", self.note)) if value)
        return KEYS_HELP + extra


def rows_around(rows: Iterable[T], selected: str | None, n: int,
                id_of: Callable[[T], str | None]) -> list[T]:
    """``n`` rows from the newest, or scrolled so the chosen one (by ``id_of``) is on
    screen."""
    listed = list(rows)
    index = next((i for i, r in enumerate(listed)
                  if selected is not None and id_of(r) == selected), 0)
    first = max(0, index - n + 1)
    return listed[first: first + n]


def submit(order: Order, connection: VerdictConnection | None, operator: str | None) -> str:
    """Send a verdict; returns the line the operator reads about it."""
    if connection is None:
        return "cannot validate: start the dashboard with --replay (the monitor takes " \
               "verdicts there)"
    try:
        body = send_verdict(connection, order.detection_id, order.verdict,
                            validated_class=order.validated_class, operator=operator,
                            note=order.note)
    except VerdictRefused as e:
        return f"verdict NOT taken: {e}"
    return f"{body['verdict']} as {body['validated_class']} by {body['operator']}"


def take_keys(review: Review, keys: list[str], rows: Sequence[Row],
              connection: VerdictConnection | None, courier: VerdictCourier,
              operator: str | None, channel: int, fmax_hz: float) -> bool:
    """Apply the keys typed since the last frame (any verdict they give goes to
    ``courier``) and show the answers that came back; True when the screen must be drawn
    again."""
    for key in keys:
        order = review.key(key, rows)
        if order is not None:
            review.message = courier.send(partial(submit, order, connection, operator))
    if keys:
        review.show_clip(rows, channel, fmax_hz)
    answers = courier.answers()
    if answers:
        review.message = answers[-1]
    return bool(keys or answers)
