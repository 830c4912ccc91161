"""The labelled DCLDE 2013 right whale days, the leave-one-day-out split, window sampling.

Three days of the NOPP6 array in Cape Cod Bay carry DCLDE 2013 ground truth: 2009-03-28
(three 15-min files, 53 upcalls), 2009-03-29 (15 min, 61) and 2009-03-31 (15 min of
another channel, 18). Three 15-min background files from another site (GSC, 2000) hold
no calls; each is paired with a day, so a held-out day is tested like the hidden one:
its calls plus background.

Why sample this way (v3): the detector is judged on another day and at other sites, so
every epoch draws (a) each day's real calls equally often (03-31 has 18 calls, 03-28 53:
uniform sampling would learn 03-28), time-shifted, speed-perturbed and mixed with noise
of *another* recording; (b) synthetic upcalls (``narw_synth``) mixed into real noise of
every recording at levels drawn wide; (c) negatives: real noise of every recording
(away from annotated calls and from anything Koogu's model hears: the truth misses faint
calls), synthetic confusers mixed into it, and hard negatives the model itself scored
high on (mined during training from the same call-free places,
:meth:`WindowSampler.add_hard`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import narw_synth
import numpy as np
import soundfile as sf
from narw_synth import SAMPLE_RATE, SEGMENT

from pamlive.dsp.chain import TransformChain, TransformSpec
from pamlive.dsp.pdtf import read_pdtf
from pamlive.evaluate import Event, read_annotations, stem_of

MIN_CALL_FRACTION = 0.6
# Negatives keep this far (s) from any annotated call: faint unannotated calls sit
# next to annotated ones; and this far from anything the teacher hears (a Koogu clip
# >= TEACHER_QUIET): calls nobody annotated (``narw_teacher``).
CALL_GUARD_S = 4.0
TEACHER_QUIET, TEACHER_GUARD_S = 0.5, 1.0
PAD_PROB = 0.05
# In-band level of synthetic upcalls over the noise they are mixed into: from barely
# visible to the 30-40 dB of a close call on a quiet recorder (PAMGuard's example clips),
# louder than any annotated DCLDE call.
SYNTHETIC_SNR_DB = (-10.0, 40.0)
PDTF = Path("models/pamguard-right-whale/right_whale_DL_settings.pdtf")

ROOT = Path("data/narw-dclde2013")
ANNOTATIONS = (ROOT / "train/annotations_train.csv", ROOT / "unlabelled/annotations_dclde2013.csv")


@dataclass(frozen=True)
class Day:
    """One labelled day: its right whale recordings and the background file paired
    with it when the day is held out."""

    name: str
    files: tuple[Path, ...]
    background: Path


DAYS = (
    Day("2009-03-28", tuple(ROOT / f"train/narw/NOPP6_EST_20090328_{t}.wav"
                            for t in ("000000", "001500", "003000")),
        ROOT / "train/background/GSC_2000-05-19_00-00-00.wav"),
    Day("2009-03-29", (ROOT / "unlabelled/NOPP6_EST_20090329_121500.wav",),
        ROOT / "train/background/GSC_2000-05-19_00-15-00.wav"),
    Day("2009-03-31", (ROOT / "unlabelled/NOPP6_EST_20090331_220000_CH10.wav",),
        ROOT / "train/background/GSC_2000-05-19_00-30-00.wav"),
)


def split(holdout: int | None) -> tuple[list[Day], Day | None]:
    """(training days, held-out day); ``holdout`` None: train on all three."""
    if holdout is None:
        return list(DAYS), None
    return [d for i, d in enumerate(DAYS) if i != holdout], DAYS[holdout]


def annotations(shared: Path) -> dict[str, list[Event]]:
    """Every labelled call of the three days, by file stem."""
    out: dict[str, list[Event]] = {}
    for path in ANNOTATIONS:
        out.update(read_annotations(shared / path))
    return out


def feature_chain(shared: Path, band: tuple[float, float, int] | None = None
                  ) -> TransformChain:
    """PAMGuard's right whale chain (FFT 256, hop 100, 47-357 Hz, 40 bins); ``band``
    (fmin, fmax, bins) replaces its frequency compression."""
    specs = read_pdtf(shared / PDTF).transforms
    if band is not None:
        fmin, fmax, bins = band
        specs = [TransformSpec(t.name, {"bins": int(bins), "fmin": fmin, "fmax": fmax})
                 if t.name == "freq_compression" else t for t in specs]
    return TransformChain(specs)


@dataclass
class Recording:
    """One file's samples (2 kHz, float32) and its calls (seconds); ``group`` names the
    day (or background) it belongs to, for balanced sampling."""

    name: str
    group: str
    audio: np.ndarray
    calls: list[Event]
    # Koogu clip centres (s) and scores; empty: no teacher
    teacher_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    teacher_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def stem(self) -> str:
        return stem_of(self.name)

    def noise_starts(self) -> np.ndarray:
        """Sample offsets of windows that stay ``CALL_GUARD_S`` away from every call and
        ``TEACHER_GUARD_S`` away from every clip the teacher hears something in."""
        starts = np.arange(0, len(self.audio) - SEGMENT + 1)
        ok = np.ones(len(starts), bool)
        guards = [(c.start, c.end, CALL_GUARD_S) for c in self.calls]
        guards += [(t, t, TEACHER_GUARD_S) for t in self.teacher_t[self.teacher_s >= TEACHER_QUIET]]
        for start, end, guard in guards:
            lo = int((start - guard) * SAMPLE_RATE) - SEGMENT
            hi = int((end + guard) * SAMPLE_RATE)
            ok[max(lo, 0) : max(hi, 0)] = False
        return starts[ok]


def read_audio(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: expected {SAMPLE_RATE} Hz, got {rate}")
    return audio[:, 0]


def load_days(shared: Path, days: list[Day], backgrounds: bool = True, teacher: bool = True
              ) -> list[Recording]:
    """The days' recordings with their calls, and (``backgrounds``) their paired
    background files (group ``background``, no calls); ``teacher``: with Koogu's scores
    (computed once, cached; needs TensorFlow)."""
    calls = annotations(shared)
    out = [Recording(f.name, d.name, read_audio(shared / f), calls.get(stem_of(f), []))
           for d in days for f in d.files]
    if backgrounds:
        out += [Recording(d.background.name, "background", read_audio(shared / d.background), [])
                for d in days]
    if teacher:
        from narw_teacher import cached_koogu

        paths = {p.name: shared / p for d in days for p in (*d.files, d.background)}
        for rec in out:
            rec.teacher_t, rec.teacher_s = cached_koogu(shared, paths[rec.name])
    return out


class WindowSampler:
    """Draws augmented positive and negative 2-s windows (see the module docstring).

    ``speed``: windows are read ``1 +- speed`` times as long and resampled to 2 s
    (time-stretch and pitch shift together). ``call_confusers``: the share of call
    windows that get a synthetic confuser mixed in as negatives do, so that a vessel
    tone or a pulse train in a window is no evidence against a call."""

    def __init__(self, recordings: list[Recording], rng: np.random.Generator,
                 speed: float = 0.05, call_confusers: float = 0.0) -> None:
        self.rng = rng
        self.speed = speed
        self.call_confusers = call_confusers
        groups = sorted({r.group for r in recordings if r.calls})
        self.calls = {g: [(r, c) for r in recordings if r.group == g for c in r.calls]
                      for g in groups}
        self.noise = [(r, s) for r in recordings if len(s := r.noise_starts())]
        self.hard: list[tuple[Recording, int]] = []

    @property
    def n_calls(self) -> int:
        return sum(len(c) for c in self.calls.values())

    def _read(self, rec: Recording, s: int) -> np.ndarray:
        """2 s from sample ``s``, speed-perturbed if asked."""
        n = round(SEGMENT * self.rng.uniform(1 - self.speed, 1 + self.speed)) if self.speed \
            else SEGMENT
        s = min(max(s + (SEGMENT - n) // 2, 0), len(rec.audio) - n)
        if n == SEGMENT:
            return rec.audio[s : s + SEGMENT].astype(np.float64)
        pos = np.linspace(0.0, n - 1.0, SEGMENT)  # linear interpolation: cheap, any n
        return np.interp(pos, np.arange(n), rec.audio[s : s + n])

    def _noise(self) -> tuple[Recording, np.ndarray]:
        rec, starts = self.noise[self.rng.integers(len(self.noise))]
        return rec, self._read(rec, int(starts[self.rng.integers(len(starts))]))

    def _other_noise(self, rec: Recording) -> np.ndarray:
        """A noise window from another recording than ``rec`` (another day or site)."""
        while True:
            other, x = self._noise()
            if other is not rec or len(self.noise) == 1:
                return x

    def _real_call(self) -> np.ndarray:
        groups = list(self.calls)
        pool = self.calls[groups[self.rng.integers(len(groups))]]
        rec, call = pool[self.rng.integers(len(pool))]
        dur = min(call.end - call.start, 2.0)
        lo = call.start + MIN_CALL_FRACTION * dur - 2.0
        hi = call.end - MIN_CALL_FRACTION * dur
        x = self._read(rec, round(self.rng.uniform(lo, hi) * SAMPLE_RATE))
        if self.rng.random() < 0.5:  # the call heard in another place's noise
            n = self._other_noise(rec)
            x = x + n * narw_synth.band_rms(x) / narw_synth.band_rms(n) \
                * self.rng.uniform(0.3, 2.0)
        return x

    def _gain(self, x: np.ndarray) -> np.ndarray:
        """Random level (-30..+10 dB around a common RMS): the chain's row normalisation
        removes most of it, the rest teaches level does not matter. One window in
        ``PAD_PROB`` ends in silence, as a clip shorter than a window is padded
        (:meth:`pamlive.windows.Windower.flush`)."""
        rms = float(np.sqrt(np.mean(x**2))) + 1e-9
        x = x * (0.1 / rms) * 10 ** (self.rng.uniform(-30, 10) / 20)
        if self.rng.random() < PAD_PROB:
            x[SEGMENT - int(self.rng.uniform(0.1, 0.6) * SAMPLE_RATE):] = 0.0
        return x.astype(np.float32)

    def add_hard(self, rec: Recording, starts: np.ndarray) -> None:
        """Windows (sample offsets into ``rec``, clear of calls) the model scored high."""
        self.hard += [(rec, int(s)) for s in starts]

    def _confused(self, x: np.ndarray) -> np.ndarray:
        return narw_synth.mix(x, narw_synth.confuser(self.rng), self.rng.uniform(-6, 20))

    def _negative(self) -> np.ndarray:
        r = self.rng.random()
        if r < 0.25 and self.hard:
            rec, s = self.hard[self.rng.integers(len(self.hard))]
            return self._read(rec, s)
        _, x = self._noise()
        return self._confused(x) if r < 0.5 else x

    def _positive(self, x: np.ndarray) -> np.ndarray:
        """A call window, with a confuser in ``call_confusers`` of them (no draw at 0, so
        the recipe without it gives the same weights as before)."""
        if self.call_confusers and self.rng.random() < self.call_confusers:
            return self._confused(x)
        return x

    def draw(self, real: int, synthetic: int, negatives: int
             ) -> tuple[np.ndarray, np.ndarray]:
        """``real`` windows of labelled calls (days balanced), ``synthetic`` upcalls in
        real noise, ``negatives`` windows without a call; labels 1/1/0."""
        xs = [self._positive(self._real_call()) for _ in range(real)]
        xs += [self._positive(narw_synth.mix(self._noise()[1], narw_synth.upcall(self.rng),
                                             self.rng.uniform(*SYNTHETIC_SNR_DB)))
               for _ in range(synthetic)]
        xs += [self._negative() for _ in range(negatives)]
        ys = np.r_[np.ones(real + synthetic), np.zeros(negatives)].astype(np.int64)
        return np.stack([self._gain(x) for x in xs]), ys


def file_windows(audio: np.ndarray, hop_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """All 2-s windows at ``hop_s``: (segments (n, 4000), start sample offsets)."""
    hop = int(hop_s * SAMPLE_RATE)
    starts = np.arange(0, len(audio) - SEGMENT + 1, hop)
    segs = np.stack([audio[s : s + SEGMENT] for s in starts])
    return segs, starts
