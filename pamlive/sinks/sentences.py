"""The serial sink's sentences: NMEA 0183-style proprietary lines, one per alert.

    $PPAMA,<kind>,<station>,<class>,<start_utc>,<end_utc>,<score>,<bearing_deg>,<run_id>,<seq>*hh
    $PPAMS,<state>,<run_id>,<detail>*hh
    $PPAMV,<station>,<class>,<validated_class>,<verdict>,<operator>,<detection_id>,
           <run_id>,<seq>*hh                                   (one line)

``P`` + ``PAM`` is a proprietary sentence of manufacturer ``PAM``; ``A`` an alert, ``S``
the monitor's state, ``V`` an operator's verdict on a detection. ``hh`` is the NMEA
checksum (XOR of the characters between ``$`` and ``*``, two upper-case hex digits);
every line ends ``\\r\\n``. Empty fields are empty.
docs/alerts.md, "Serial sentences", says what each field holds.
"""

from __future__ import annotations

import re
from typing import Any

# NMEA's reserved characters and anything not printable ASCII cannot stand in a field
_UNSAFE = re.compile(r"[^\x20-\x7e]|[$*,!\\^~]")


def field(value: Any) -> str:
    """A value as an NMEA field: text with reserved characters as ``_``, None as empty."""
    return "" if value is None else _UNSAFE.sub("_", str(value))


def _number(value: Any, decimals: int) -> str:
    return f"{value:.{decimals}f}" if isinstance(value, int | float) else ""


def sentence(*fields: str) -> str:
    """``$<fields joined by commas>*<checksum>\\r\\n``."""
    text = ",".join(fields)
    checksum = 0
    for char in text.encode("ascii"):
        checksum ^= char
    return f"${text}*{checksum:02X}\r\n"


def alert_sentence(kind: str, body: dict[str, Any]) -> str:
    """``$PPAMA``: one alert. A call's class is its species and its score its class
    probability; a call summary has neither."""
    name = body.get("class", body.get("species"))
    score = body.get("score", body.get("class_prob"))
    return sentence("PPAMA", field(kind), field(body.get("station")), field(name),
                    field(body.get("start_utc")), field(body.get("end_utc")),
                    _number(score, 3), _number(body.get("bearing_deg"), 1),
                    field(body.get("run_id")), field(body.get("seq")))


def validation_sentence(body: dict[str, Any]) -> str:
    """``$PPAMV``: an operator's verdict (``confirmed``, ``rejected``, ``unsure``)."""
    return sentence("PPAMV", *(field(body.get(k)) for k in (
        "station", "class", "validated_class", "verdict", "operator", "detection_id",
        "run_id", "seq")))


def state_sentence(state: str, run_id: Any, detail: Any) -> str:
    """``$PPAMS``: the monitor's state (``ok``, ``stopped``, ``lost``) or a ``gap``."""
    return sentence("PPAMS", field(state), field(run_id), field(detail))
