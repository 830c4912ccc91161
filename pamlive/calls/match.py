"""Calls against reference calls (another run, another program): which are the same call,
and how far their numbers are apart. Used for parity with batdetect2 (docs/bats.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pamlive.calls.call import Call

START_TOL_S = 0.001  # issue 16: start within 1 ms
FREQ_TOL_HZ = 1000.0  # ... and frequency bounds within 1 kHz
PROB_TOL = 0.01  # ... probabilities within 0.01


@dataclass
class Parity:
    """How ``found`` compares with ``reference``: pairs of the same call (by box), and the
    largest differences over the pairs."""

    reference: int = 0
    found: int = 0
    pairs: list[tuple[Call, Call]] = field(default_factory=list)  # (found, reference)

    @property
    def same_species(self) -> int:
        return sum(f.species == r.species for f, r in self.pairs)

    @property
    def within_prob_tol(self) -> int:
        """Pairs of the same species whose class and detection probabilities are within
        :data:`PROB_TOL`: calls that match in every respect."""
        return sum(f.species == r.species and abs(f.class_prob - r.class_prob) <= PROB_TOL
                   and abs(f.det_prob - r.det_prob) <= PROB_TOL for f, r in self.pairs)

    def max_dev(self) -> dict[str, float]:
        """Largest |difference| over the pairs: start (s), frequency bounds (Hz), class and
        detection probability."""
        def most(values: list[float]) -> float:
            return max(values, default=0.0)
        return {
            "start_s": most([abs(f.start_s - r.start_s) for f, r in self.pairs]),
            "freq_hz": most([max(abs(f.low_hz - r.low_hz), abs(f.high_hz - r.high_hz))
                             for f, r in self.pairs]),
            "class_prob": most([abs(f.class_prob - r.class_prob) for f, r in self.pairs]),
            "det_prob": most([abs(f.det_prob - r.det_prob) for f, r in self.pairs]),
        }

    def __iadd__(self, other: Parity) -> Parity:
        self.reference += other.reference
        self.found += other.found
        self.pairs += other.pairs
        return self


def same_box(a: Call, b: Call) -> bool:
    return (a.channel == b.channel and abs(a.start_s - b.start_s) <= START_TOL_S
            and abs(a.low_hz - b.low_hz) <= FREQ_TOL_HZ
            and abs(a.high_hz - b.high_hz) <= FREQ_TOL_HZ)


def match_calls(found: Sequence[Call], reference: Sequence[Call]) -> Parity:
    """Pair each reference call with the nearest-starting unpaired found call of the same
    box (start within 1 ms, both frequency bounds within 1 kHz, same channel)."""
    parity = Parity(len(reference), len(found))
    free = list(range(len(found)))
    for r in sorted(reference, key=lambda c: c.start_s):
        near = [i for i in free if same_box(found[i], r)]
        if near:
            best = min(near, key=lambda i: abs(found[i].start_s - r.start_s))
            free.remove(best)
            parity.pairs.append((found[best], r))
    return parity
