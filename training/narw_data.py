"""The DCLDE 2013 right whale training data: recordings, split, window sampling, features.

Version 2 adds the two unlabelled recordings of other days: Koogu's NARW model
(a teacher trained on other data) marks pseudo-calls where it is sure (peak score
>= ``PSEUDO_PEAK``) and quiet stretches where it sees nothing; windows where the v1
detector fired but the teacher is quiet are hard negatives (noise bursts and other
sounds in whale recordings, what v1 raised false alarms on off its training day).
Augmentation adds speed perturbation (small time-stretch + pitch shift together).

Why sampling this way: the 53 annotated upcalls are far too few to train on as fixed
windows, so every epoch draws fresh 2-s windows around each call (random time shift
with at least ``MIN_CALL_FRACTION`` of the call inside, as a 1-s hop sees it), random
gain, and mixes the call window with a noise window (calls into background). Negatives
come from the background files *and* from the right whale files away from annotated
calls: negatives from one site only would teach the net to tell sites apart, not calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.pdtf import read_pdtf
from pamlive.evaluate import Event, read_annotations, stem_of

SAMPLE_RATE = 2000
SEGMENT = 2 * SAMPLE_RATE
MIN_CALL_FRACTION = 0.6
# Negatives from right whale files keep this far (s) from any annotated call: the
# files may hold faint calls that were not annotated next to annotated ones.
CALL_GUARD_S = 4.0

DATA_SUBDIR = Path("data/narw-dclde2013/train")
UNLABELLED_SUBDIR = Path("data/narw-dclde2013/unlabelled")
UNLABELLED_FILES = ("NOPP6_EST_20090329_121500.wav", "NOPP6_EST_20090331_220000_CH10.wav")

# Teacher (Koogu NARW) thresholds. A pseudo-call is a run of clips scoring >=
# PSEUDO_RUN whose peak reaches PSEUDO_PEAK (Koogu at 0.999 raised no false alarm on the
# hidden day in issue 11); quiet = no clip within TEACHER_GUARD_S of the window reaches
# TEACHER_QUIET. PSEUDO_CALL_S: assumed call length around the run's centre.
PSEUDO_RUN, PSEUDO_PEAK, PSEUDO_CALL_S = 0.99, 0.999, 1.0
TEACHER_QUIET, TEACHER_GUARD_S = 0.5, 1.0
# A hard negative: teacher-quiet window where v1 scored at least this.
HARD_SCORE = 0.5
PDTF = Path("models/pamguard-right-whale/right_whale_DL_settings.pdtf")

NARW_FILES = tuple(f"narw/NOPP6_EST_20090328_{t}.wav" for t in ("000000", "001500", "003000"))
# Paired with NARW_FILES by position for leave-one-out; pair 1 is the shipped test split.
BACKGROUND_FILES = tuple(f"background/GSC_2000-05-19_00-{m}-00.wav" for m in ("00", "30", "15"))


def leave_one_out(k: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training files, held-out files) holding out the k-th right whale file together
    with the k-th background file: a file-level split."""
    held = (NARW_FILES[k], BACKGROUND_FILES[k])
    return tuple(f for f in NARW_FILES + BACKGROUND_FILES if f not in held), held


# The shipped model's split. The test files are never read by training or model selection.
TRAIN_FILES, TEST_FILES = leave_one_out(1)
# Model selection (architecture, epochs, augmentation): two-fold CV over TRAIN_FILES.
DEV_TRAIN_FILES = TRAIN_FILES[0::2]
DEV_VALID_FILES = TRAIN_FILES[1::2]


def feature_chain(shared: Path) -> TransformChain:
    """The frozen PAMGuard right whale chain (FFT 256, hop 100, 47-357 Hz, 40 bins)."""
    return TransformChain(read_pdtf(shared / PDTF).transforms)


@dataclass
class Recording:
    """One file's samples and its annotated calls (seconds)."""

    name: str
    audio: np.ndarray
    calls: list[Event]
    # Koogu clip centres (s) and scores; empty arrays if no teacher is used
    teacher_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    teacher_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # v1 window starts (s) and scores, for hard negatives
    miner_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    miner_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def stem(self) -> str:
        return stem_of(self.name)

    def noise_starts(self) -> np.ndarray:
        """Sample offsets of windows that stay ``CALL_GUARD_S`` away from every call."""
        starts = np.arange(0, len(self.audio) - SEGMENT + 1)
        ok = np.ones(len(starts), bool)
        for c in self.calls:
            lo = int((c.start - CALL_GUARD_S) * SAMPLE_RATE) - SEGMENT
            hi = int((c.end + CALL_GUARD_S) * SAMPLE_RATE)
            ok[max(lo, 0) : max(hi, 0)] = False
        for t in self.teacher_t[self.teacher_s >= TEACHER_QUIET]:
            lo = int((t - TEACHER_GUARD_S) * SAMPLE_RATE) - SEGMENT
            hi = int((t + TEACHER_GUARD_S) * SAMPLE_RATE)
            ok[max(lo, 0) : max(hi, 0)] = False
        return starts[ok]

    def hard_starts(self) -> np.ndarray:
        """Noise windows (see :meth:`noise_starts`) where v1 scored >= ``HARD_SCORE``."""
        if not len(self.miner_t):
            return np.zeros(0, np.int64)
        cand = np.round(self.miner_t[self.miner_s >= HARD_SCORE] * SAMPLE_RATE).astype(np.int64)
        return np.intersect1d(cand, self.noise_starts())


def pseudo_calls(t: np.ndarray, s: np.ndarray) -> list[Event]:
    """Teacher-sure calls: runs of clips >= ``PSEUDO_RUN`` peaking >= ``PSEUDO_PEAK``,
    each taken as ``PSEUDO_CALL_S`` around the run's centre."""
    calls: list[Event] = []
    high = np.flatnonzero(s >= PSEUDO_RUN)
    if not len(high):
        return calls
    breaks = np.flatnonzero(np.diff(high) > 1)
    for run in np.split(high, breaks + 1):
        if s[run].max() >= PSEUDO_PEAK:
            mid = float(t[run].mean())
            calls.append(Event(mid - PSEUDO_CALL_S / 2, mid + PSEUDO_CALL_S / 2, 1.0))
    return calls


def load_recordings(shared: Path, names: tuple[str, ...]) -> list[Recording]:
    """Read the files (2 kHz mono int16 -> float32 in [-1, 1]) with their annotations."""
    root = shared / DATA_SUBDIR
    annotations = read_annotations(root / "annotations_train.csv")
    out = []
    for name in names:
        audio, rate = sf.read(str(root / name), dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{name}: expected {SAMPLE_RATE} Hz, got {rate}")
        out.append(Recording(name, audio[:, 0], annotations.get(stem_of(name), [])))
    return out


def load_unlabelled(shared: Path, teacher: dict[str, tuple[np.ndarray, np.ndarray]],
                    ) -> list[Recording]:
    """The unlabelled recordings of other days, with the teacher's pseudo-calls."""
    out = []
    for name in UNLABELLED_FILES:
        audio, rate = sf.read(str(shared / UNLABELLED_SUBDIR / name), dtype="float32",
                              always_2d=True)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{name}: expected {SAMPLE_RATE} Hz, got {rate}")
        t, s = teacher[stem_of(name)]
        out.append(Recording(name, audio[:, 0], pseudo_calls(t, s)))
    return out


class WindowSampler:
    """Draws augmented positive and negative 2-s windows from recordings.

    ``hard_frac`` of the negatives come from the hard-negative pool (when there is one);
    ``speed``: windows are read ``1 +- speed`` times as long and resampled to 2 s
    (time-stretch and pitch shift together)."""

    def __init__(
        self, recordings: list[Recording], rng: np.random.Generator, noise_mix_max: float = 2.0,
        hard_frac: float = 0.0, speed: float = 0.0,
    ) -> None:
        self.rng = rng
        self.noise_mix_max = noise_mix_max
        self.hard_frac = hard_frac
        self.speed = speed
        self.recordings = recordings
        self.calls = [(r, c) for r in recordings for c in r.calls]
        self.noise = [(r, r.noise_starts()) for r in recordings]
        self.noise = [(r, s) for r, s in self.noise if len(s)]
        self.hard = [(r, r.hard_starts()) for r in recordings]
        self.hard = [(r, s) for r, s in self.hard if len(s)]

    def _read(self, rec: Recording, s: int) -> np.ndarray:
        """2 s from sample ``s``, speed-perturbed if asked."""
        if not self.speed:
            s = min(max(s, 0), len(rec.audio) - SEGMENT)
            return rec.audio[s : s + SEGMENT]
        n = round(SEGMENT * self.rng.uniform(1 - self.speed, 1 + self.speed))
        s = min(max(s + (SEGMENT - n) // 2, 0), len(rec.audio) - n)
        pos = np.linspace(0.0, n - 1.0, SEGMENT)  # linear interpolation: cheap, any n
        return np.interp(pos, np.arange(n), rec.audio[s : s + n]).astype(np.float32)

    def _noise_window(self, hard: bool = False) -> np.ndarray:
        pool = self.hard if hard and self.hard else self.noise
        rec, starts = pool[self.rng.integers(len(pool))]
        return self._read(rec, int(starts[self.rng.integers(len(starts))]))

    def _call_window(self, rec: Recording, call: Event) -> np.ndarray:
        dur = min(call.end - call.start, 2.0)
        lo = call.start + MIN_CALL_FRACTION * dur - 2.0
        hi = call.end - MIN_CALL_FRACTION * dur
        return self._read(rec, round(self.rng.uniform(lo, hi) * SAMPLE_RATE))

    def _augment(self, x: np.ndarray, mix_prob: float) -> np.ndarray:
        x = x.astype(np.float32, copy=True)
        rms = float(np.sqrt(np.mean(x**2))) + 1e-9
        if self.rng.random() < mix_prob:
            n = self._noise_window()
            n_rms = float(np.sqrt(np.mean(n**2))) + 1e-9
            # noise added at 0.3x to noise_mix_max x the window's own level
            x += n * (rms / n_rms) * self.rng.uniform(0.3, self.noise_mix_max)
        gain = 10 ** (self.rng.uniform(-20, 10) / 20)
        return x * (0.1 / rms) * gain

    def draw(self, per_call: int, negatives: int) -> tuple[np.ndarray, np.ndarray]:
        """``per_call`` windows per annotated call and ``negatives`` noise windows."""
        xs, ys = [], []
        for rec, call in self.calls:
            for _ in range(per_call):
                xs.append(self._augment(self._call_window(rec, call), mix_prob=0.5))
                ys.append(1)
        for _ in range(negatives):
            hard = self.rng.random() < self.hard_frac
            xs.append(self._augment(self._noise_window(hard), mix_prob=0.3))
            ys.append(0)
        return np.stack(xs), np.asarray(ys, np.int64)


def file_windows(audio: np.ndarray, hop_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """All 2-s windows at ``hop_s``: (segments (n, 4000), start times s)."""
    hop = int(hop_s * SAMPLE_RATE)
    starts = np.arange(0, len(audio) - SEGMENT + 1, hop)
    segs = np.stack([audio[s : s + SEGMENT] for s in starts])
    return segs, starts / SAMPLE_RATE
