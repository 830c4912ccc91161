"""Model class names -> the species codes Tethys archives (ITIS taxonomic serial numbers).

Tethys keys every detection and effort entry on an ITIS TSN (``SpeciesId``), never on a
model's own class name, so a class without a code cannot be archived: it is refused by
name, with the option that maps it, rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pamlive.errors import PamliveError


@dataclass(frozen=True)
class Species:
    """What one model class is, for an archive."""

    tsn: int  # ITIS taxonomic serial number (https://www.itis.gov)
    latin: str  # the name the TSN stands for (for people and docs; Tethys stores the TSN)
    call: str  # the call type the class detects (Tethys ``Call``)


# the classes of the models pamlive ships; ITIS TSN 180537 is Eubalaena glacialis (North
# Atlantic right whale), the code PAMGuard's Tethys export uses for it too
KNOWN: dict[str, Species] = {
    "right_whale": Species(180537, "Eubalaena glacialis", "upcall"),
}

_OPTION = re.compile(r"^(?P<cls>[^=]+)=(?P<tsn>\d+)(?::(?P<call>.+))?$")


def parse_option(text: str) -> tuple[str, Species]:
    """``humpback=180530:song`` -> (class, species); the Latin name is left to ITIS."""
    m = _OPTION.match(text.strip())
    if m is None:
        raise PamliveError(f"--species {text!r}: expected CLASS=TSN[:CALL], "
                           "e.g. right_whale=180537:upcall")
    return m["cls"], Species(int(m["tsn"]), "", m["call"] or "")


def species_table(options: Iterable[str]) -> dict[str, Species]:
    """The built-in table with the ``--species`` options over it."""
    return {**KNOWN, **dict(parse_option(o) for o in options)}


def species_of(classes: Iterable[str], table: Mapping[str, Species]) -> dict[str, Species]:
    """Each class's species; the first class without one is refused in one line."""
    out = {}
    for name in sorted(set(classes)):
        if name not in table:
            raise PamliveError(f"class {name!r} has no species code for Tethys: map it to its "
                               f"ITIS TSN with --species {name}=TSN[:CALL]")
        out[name] = table[name]
    return out
