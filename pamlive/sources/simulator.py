"""A simulated hydrophone array: the demo's input, and a scored test signal.

It produces what a real array in right whale habitat hears: coloured ambient noise
(shaped like the Cape Cod Bay recordings in ``shared/data``, with the Wenz-like rise
below 20 Hz and fall above 500 Hz), occasional ship passages (propeller tonal lines with
true Doppler and spreading loss, plus broadband noise), and North Atlantic right whale
upcalls: a J-shaped ~1 s sweep from ~90 Hz up to ~200 Hz with a weaker harmonic and a
smooth envelope, arriving on each hydrophone with the plane-wave delay of its bearing.
Optionally also impulsive single-channel transients, heard by one hydrophone only: knocks
on the housing, flow-noise bursts and cable strum (what channel agreement is for).

The stream is deterministic: the same seed gives the same samples whatever block sizes
``read`` is called with. Noise is generated in fixed internal chunks (FIR overlap-add),
and every event is an analytic function of the absolute sample time, so block edges
never show. Every call is kept as ground truth so tests can score detectors on it.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from pamlive.alerts.schema import utc_at_sample, utc_iso
from pamlive.config import SimulatorConfig

SNR_BAND_HZ = (50.0, 250.0)
"""Band in which a call's SNR is defined: call power over its duration / ambient noise power."""

# Ambient noise spectrum (dB relative to 100 Hz), from Welch spectra of the DCLDE 2013
# Cape Cod Bay recordings; above 1 kHz the Wenz wind-noise slope of ~ -5 dB/octave.
_AMBIENT_DB = ((0.0, -60.0), (4.0, 18.0), (10.0, 20.0), (20.0, 6.0), (50.0, 1.0),
               (100.0, 0.0), (200.0, -2.0), (300.0, -3.5), (500.0, -5.0), (1000.0, -11.0))
# Broadband ship noise: cavitation energy peaks at tens of Hz and falls ~6 dB/octave.
_SHIP_DB = ((0.0, -60.0), (5.0, -10.0), (20.0, 0.0), (60.0, 2.0), (100.0, 0.0),
            (200.0, -6.0), (400.0, -12.0), (800.0, -18.0))
_FREQ_RESOLUTION_HZ = 4.0  # FIR length follows from it: the 4-20 Hz shape needs it
_MAX_TAPS = 8192  # bounds memory and CPU at ultrasonic rates (coarser low-end shape there)
_MIN_CALL_GAP_S = 3.0
_SHIP_MEAN_PASSAGE_S = 330.0
MAX_GROUND_TRUTH = 20000  # calls remembered (~4.6 days at one call per 20 s): bounded memory
TRANSIENT_KINDS = ("knock", "flow", "strum")
_FLOW_COMPONENTS = 48  # random-phase sinusoids summed into a flow-noise burst


@dataclass(frozen=True)
class SimulatedCall:
    """One synthetic upcall as the array received it (sample indices of the stream)."""

    start_sample: int  # first arrival over the channels (= min(channel_starts))
    end_sample: int  # last sample of the last arrival, exclusive
    channel_starts: list[int]  # per channel arrival sample
    bearing_deg: float  # direction of the source, clockwise from the array's +y axis
    snr_db: float  # in SNR_BAND_HZ, at the reference amplitude (channels vary ±1.5 dB)
    f0_hz: float  # sweep start
    f1_hz: float  # sweep end


@dataclass(frozen=True)
class SimulatedTransient:
    """One impulsive single-channel event (ground truth: it is not a call)."""

    start_sample: int
    end_sample: int
    channel: int
    kind: str  # knock | flow | strum
    snr_db: float  # in SNR_BAND_HZ over its duration, like a call's


@dataclass(frozen=True)
class _Transient:
    truth: SimulatedTransient
    onset_s: float
    duration_s: float
    freqs: np.ndarray  # Hz: knock resonance / flow components / strum start and end
    phases: np.ndarray
    gain: float


def square_geometry(side_m: float) -> list[tuple[float, float]]:
    """Four hydrophones on the corners of a square, channel order (0,0), (s,0), (0,s), (s,s)."""
    return [(0.0, 0.0), (side_m, 0.0), (0.0, side_m), (side_m, side_m)]


def towed_line_geometry(elements: int, spacing_m: float) -> list[tuple[float, float]]:
    """A towed line trailing behind the vessel: +y is the bow, element 0 nearest to it."""
    return [(0.0, -k * spacing_m) for k in range(elements)]


@dataclass(frozen=True)
class SimulatedShip:
    """One ship passage (ground truth for the tonal lines and the broadband rise)."""

    start_sample: int
    end_sample: int
    cpa_sample: int  # closest point of approach
    cpa_range_m: float
    cpa_bearing_deg: float
    lines_hz: tuple[float, ...]  # emitted tonal frequencies (received ones carry Doppler)


@dataclass(frozen=True)
class _Call:
    truth: SimulatedCall
    arrival_s: np.ndarray  # per channel onset time, seconds
    gains: np.ndarray  # per channel amplitude
    duration_s: float
    curve: float  # sweep exponent: f(u) = f0 + (f1 - f0) * (u / T) ** curve
    harmonics: tuple[tuple[int, float, float], ...]  # (order, relative amplitude, phase)
    phase: float
    wobble: tuple[float, float, float]  # slow FM of real calls: (depth Hz, rate Hz, phase)


@dataclass(frozen=True)
class _Ship:
    truth: SimulatedShip
    t0_s: float
    t1_s: float
    t_cpa_s: float
    cpa_xy: np.ndarray  # position at CPA, metres
    velocity: np.ndarray  # m/s
    lines: tuple[tuple[float, float, float], ...]  # (Hz, amplitude at CPA, phase)
    broadband_gain: float  # at CPA, multiplies the unit-power ship noise stream


def _fir_from_db(points: tuple[tuple[float, float], ...], fs: int, slope_db_oct: float,
                 numtaps: int) -> np.ndarray:
    """Linear-phase FIR with the given dB-vs-Hz shape (extended by a slope to Nyquist)."""
    nyq = fs / 2
    freqs = [f for f, _ in points if f < nyq]
    gains = [g for f, g in points if f < nyq]
    last_f, last_g = points[-1]
    if nyq > last_f:
        freqs.append(nyq)
        gains.append(last_g + slope_db_oct * math.log2(nyq / last_f))
    else:
        freqs.append(nyq)
        gains.append(float(np.interp(nyq, [f for f, _ in points], [g for _, g in points])))
    taps = signal.firwin2(numtaps, freqs, 10 ** (np.array(gains) / 20), fs=fs)
    return taps / np.sqrt(np.sum(taps**2))  # unit output power for unit white input


def _band_power(taps: np.ndarray, fs: int, band: tuple[float, float]) -> float:
    """Output power inside ``band`` of ``taps`` driven by unit-variance white noise."""
    f, h = signal.freqz(taps, worN=16384, fs=fs)
    inside = (f >= band[0]) & (f <= band[1])
    return float(np.sum(np.abs(h[inside]) ** 2) * (f[1] - f[0]) * 2 / fs)


def _envelope(v: np.ndarray) -> np.ndarray:
    """Call amplitude over normalised time 0..1: soft onset, slight swell, softer release."""
    rise = np.clip(v / 0.25, 0.0, 1.0)
    fall = np.clip((1.0 - v) / 0.2, 0.0, 1.0)
    return np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2 * (0.75 + 0.25 * v)


def _upcall(u: np.ndarray, call: _Call) -> np.ndarray:
    """Unit-amplitude upcall at times ``u`` (seconds since onset; zero outside 0..T)."""
    t_len = call.duration_s
    inside = (u >= 0.0) & (u < t_len)
    out = np.zeros_like(u)
    if not inside.any():
        return out
    ui = u[inside]
    f0, f1 = call.truth.f0_hz, call.truth.f1_hz
    p = call.curve
    depth, rate, wphase = call.wobble
    phi = 2 * np.pi * (f0 * ui + (f1 - f0) * t_len / (p + 1) * (ui / t_len) ** (p + 1)) - (
        depth / rate * (np.cos(2 * np.pi * rate * ui + wphase) - np.cos(wphase)))
    wave = np.sin(phi + call.phase)
    for order, amp, ph in call.harmonics:
        wave += amp * np.sin(order * phi + ph)
    out[inside] = _envelope(ui / t_len) * wave
    return out


class SimulatedArray:
    """A deterministic synthetic hydrophone array stream (see the module docstring)."""

    def __init__(self, config: SimulatorConfig, seed: int | None = None) -> None:
        self.config = config
        self.sample_rate = int(config.samplerate)
        self.channels = int(config.channels)
        fs = self.sample_rate
        self._positions = np.asarray(config.geometry[: self.channels], dtype=float)
        self._c = float(config.sound_speed)
        self._max_delay_s = float(np.max(np.hypot(*self._positions.T))) / self._c

        seeds = np.random.SeedSequence(seed if seed is not None else config.seed).spawn(4)
        self._noise_rng, self._call_rng, self._ship_rng, self._transient_rng = (
            np.random.default_rng(s) for s in seeds)  # the first three as before the 4th

        numtaps = min(int(fs / _FREQ_RESOLUTION_HZ), _MAX_TAPS) | 1
        ambient = _fir_from_db(_AMBIENT_DB, fs, -5.0, numtaps)
        ship = _fir_from_db(_SHIP_DB, fs, -6.0, numtaps)
        self._nfft = 4 * (1 << (numtaps - 1).bit_length())
        self._chunk = self._nfft - numtaps + 1
        self._noise_rms = 10 ** (config.noise_level_dbfs / 20)
        self._spectra = np.stack([np.fft.rfft(ambient, self._nfft), np.fft.rfft(ship, self._nfft)])
        self._noise_band_power = self._noise_rms**2 * _band_power(ambient, fs, SNR_BAND_HZ)

        self._tail = np.zeros((numtaps - 1, 2 * self.channels))
        self._noise = np.zeros((0, 2 * self.channels))
        self._noise_chunk()  # warm the filter up: no start-up transient in the stream

        self._pos = 0
        self._truth: deque[SimulatedCall] = deque(maxlen=MAX_GROUND_TRUTH)
        self._active_calls: list[_Call] = []
        self._next_call_s = self._call_gap()
        self._transients: deque[SimulatedTransient] = deque(maxlen=MAX_GROUND_TRUTH)
        self._active_transients: list[_Transient] = []
        every = config.transient_interval_s
        self._next_transient_s = (self._transient_rng.exponential(every) if every > 0
                                  else math.inf)
        self._ships: list[_Ship] = []
        self._active_ships: list[_Ship] = []
        self._next_ship_s = math.inf
        p = config.ship_probability
        self._ship_gap_mean_s = _SHIP_MEAN_PASSAGE_S * (1 - p) / p if p > 0 else math.inf
        # stationary start: with probability p a passage is already under way at t = 0
        if p > 0 and self._ship_rng.random() < p:
            self._start_ship(0.0, elapsed_fraction=self._ship_rng.uniform(0.0, 0.8))
        else:
            self._next_ship_s = self._ship_gap()

    # -- public -------------------------------------------------------------------------

    @property
    def ground_truth(self) -> list[SimulatedCall]:
        """Calls whose first arrival is before the current read position (the latest
        ``MAX_GROUND_TRUTH``)."""
        return [c for c in self._truth if c.start_sample < self._pos]

    @property
    def transients(self) -> list[SimulatedTransient]:
        """Single-channel transients that began before the current read position."""
        return [t for t in self._transients if t.start_sample < self._pos]

    def truth_records(self, start_utc: datetime) -> list[dict[str, Any]]:
        """Calls and transients so far as ``pamlive demo --truth`` lines, in time order
        (``bearing_deg`` is null for a transient: it has no direction)."""
        fs = self.sample_rate

        def utc(sample: int) -> str:
            return utc_iso(utc_at_sample(start_utc, sample, fs))

        rows = [{"start_utc": utc(c.start_sample), "end_utc": utc(c.end_sample),
                 "bearing_deg": round(c.bearing_deg, 3), "snr_db": round(c.snr_db, 2),
                 "kind": "upcall", "start_sample": c.start_sample,
                 "end_sample": c.end_sample} for c in self.ground_truth]
        rows += [{"start_utc": utc(t.start_sample), "end_utc": utc(t.end_sample),
                  "bearing_deg": None, "snr_db": round(t.snr_db, 2), "kind": t.kind,
                  "start_sample": t.start_sample, "end_sample": t.end_sample,
                  "channel": t.channel} for t in self.transients]
        return sorted(rows, key=lambda r: r["start_sample"])

    def write_truth(self, path: Path, start_utc: datetime) -> int:
        """Write :meth:`truth_records` as JSON lines; returns how many."""
        rows = self.truth_records(start_utc)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        tmp.replace(path)
        return len(rows)

    @property
    def ship_passages(self) -> list[SimulatedShip]:
        """Ship passages that started before the current read position."""
        return [s.truth for s in self._ships if s.truth.start_sample < self._pos]

    def read(self, frames: int) -> np.ndarray:
        """The next ``frames`` samples, shape (frames, channels), float32 in -1..1."""
        if frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        chunks = [self._noise]
        have = self._noise.shape[0]
        while have < frames:  # gathered, then joined once: a long read stays linear
            chunks.append(self._noise_chunk())
            have += self._chunk
        noise = np.concatenate(chunks) if len(chunks) > 1 else self._noise
        noise, self._noise = noise[:frames], noise[frames:]
        fs = self.sample_rate
        t = (self._pos + np.arange(frames)) / fs
        out = noise[:, : self.channels] * self._noise_rms
        if frames:
            self._add_ships(out, t, noise[:, self.channels :])
            self._add_calls(out, t)
            self._add_transients(out, t)
        self._pos += frames
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    # -- noise --------------------------------------------------------------------------

    def _noise_chunk(self) -> np.ndarray:
        """The next fixed-size chunk of filtered white noise (overlap-add keeps it seamless)."""
        n_ch = 2 * self.channels
        white = self._noise_rng.standard_normal((self._chunk, n_ch))
        spec = np.fft.rfft(white, self._nfft, axis=0)
        spec[:, : self.channels] *= self._spectra[0][:, None]
        spec[:, self.channels :] *= self._spectra[1][:, None]
        y = np.fft.irfft(spec, self._nfft, axis=0)
        y[: self._tail.shape[0]] += self._tail
        self._tail = y[self._chunk :].copy()
        return y[: self._chunk]

    # -- calls --------------------------------------------------------------------------

    def _call_gap(self) -> float:
        mean = max(self.config.call_interval_s - _MIN_CALL_GAP_S, 0.0)
        return _MIN_CALL_GAP_S + self._call_rng.exponential(mean)

    def _new_call(self, t_ref: float) -> _Call:
        """Draw one upcall arriving at the array's origin at ``t_ref`` seconds."""
        rng, fs = self._call_rng, self.sample_rate
        bearing = rng.uniform(0.0, 360.0)
        lo, hi = self.config.snr_db_range
        snr = rng.uniform(lo, hi)
        f0 = rng.uniform(80.0, 110.0)
        f1 = rng.uniform(170.0, 230.0)
        duration = rng.uniform(0.7, 1.2)
        curve = rng.uniform(1.8, 2.8)
        orders = (2, 3) if 3 * f1 < 0.45 * fs else (2,)
        harmonics = tuple(
            (k, 10 ** (-rng.uniform(15.0, 22.0) * (k - 1) / 20), rng.uniform(0, 2 * np.pi))
            for k in orders if k * f1 < 0.45 * fs
        )
        phase = rng.uniform(0, 2 * np.pi)
        wobble = (rng.uniform(2.0, 6.0), rng.uniform(2.0, 5.0), rng.uniform(0, 2 * np.pi))
        channel_db = rng.uniform(-1.5, 1.5, self.channels)

        b = np.deg2rad(bearing)
        toward_source = np.array([np.sin(b), np.cos(b)])
        arrival = t_ref - self._positions @ toward_source / self._c
        starts = [round(a * fs) for a in arrival]
        draft = _Call(
            truth=SimulatedCall(min(starts), max(starts) + round(duration * fs), starts,
                                bearing, snr, f0, f1),
            arrival_s=arrival, gains=np.ones(self.channels), duration_s=duration, curve=curve,
            harmonics=harmonics, phase=phase, wobble=wobble,
        )
        signal_power = self._noise_band_power * 10 ** (snr / 10)
        amplitude = math.sqrt(signal_power / _unit_band_power(draft, fs))
        return replace(draft, gains=amplitude * 10 ** (channel_db / 20))

    def _add_calls(self, out: np.ndarray, t: np.ndarray) -> None:
        block_end_s = t[-1] + 1 / self.sample_rate
        while self._next_call_s - self._max_delay_s < block_end_s:
            call = self._new_call(self._next_call_s)
            self._truth.append(call.truth)
            self._active_calls.append(call)
            self._next_call_s += call.duration_s + self._call_gap()
        last = self._pos + len(t)
        for call in self._active_calls:
            if call.truth.start_sample >= last:
                continue
            for ch in range(self.channels):
                out[:, ch] += call.gains[ch] * _upcall(t - call.arrival_s[ch], call)
        self._active_calls = [c for c in self._active_calls if c.truth.end_sample > last]

    # -- transients ---------------------------------------------------------------------

    def _new_transient(self, onset: float) -> _Transient:
        """Draw one knock (a ringing impulse), flow burst or strum tone on one channel."""
        rng, fs = self._transient_rng, self.sample_rate
        kind = str(rng.choice(TRANSIENT_KINDS))
        if kind == "knock":
            duration = rng.uniform(0.05, 0.25)
            freqs = np.array([rng.uniform(60.0, 400.0), duration / 6])  # resonance, decay
        elif kind == "flow":
            duration = rng.uniform(0.5, 2.5)
            freqs = rng.uniform(20.0, 300.0, _FLOW_COMPONENTS)
        else:
            duration = rng.uniform(0.5, 2.0)
            freqs = np.array([rng.uniform(60.0, 120.0), rng.uniform(120.0, 250.0)])
        phases = np.asarray(rng.uniform(0.0, 2 * np.pi, size=freqs.shape[0]))
        lo, hi = self.config.snr_db_range
        snr = rng.uniform(lo, hi)
        channel = int(rng.integers(self.channels))
        start = round(onset * fs)
        draft = _Transient(SimulatedTransient(start, start + round(duration * fs), channel, kind,
                                              snr), onset, duration, freqs, phases, 1.0)
        n = round(duration * fs)
        power = _band_power_of(_transient_wave(np.arange(n) / fs, draft), fs)
        gain = math.sqrt(self._noise_band_power * 10 ** (snr / 10) / max(power, 1e-30))
        return replace(draft, gain=gain)

    def _add_transients(self, out: np.ndarray, t: np.ndarray) -> None:
        block_end_s = t[-1] + 1 / self.sample_rate
        while self._next_transient_s < block_end_s:
            tr = self._new_transient(self._next_transient_s)
            self._transients.append(tr.truth)
            self._active_transients.append(tr)
            self._next_transient_s += tr.duration_s + self._transient_rng.exponential(
                self.config.transient_interval_s)
        for tr in self._active_transients:
            out[:, tr.truth.channel] += tr.gain * _transient_wave(t - tr.onset_s, tr)
        self._active_transients = [tr for tr in self._active_transients
                                   if tr.onset_s + tr.duration_s > block_end_s]

    # -- ships --------------------------------------------------------------------------

    def _ship_gap(self) -> float:
        return self._ship_rng.exponential(self._ship_gap_mean_s)

    def _start_ship(self, t_start: float, elapsed_fraction: float = 0.0) -> None:
        """Draw the passage audible from ``t_start`` and schedule the next one after it."""
        rng, fs = self._ship_rng, self.sample_rate
        duration = rng.uniform(180.0, 480.0)
        t0 = t_start - elapsed_fraction * duration
        cpa_range = rng.uniform(300.0, 2000.0)
        cpa_bearing = rng.uniform(0.0, 360.0)
        speed = rng.uniform(4.0, 10.0) * rng.choice([-1.0, 1.0])
        b = np.deg2rad(cpa_bearing)
        cpa_xy = cpa_range * np.array([np.sin(b), np.cos(b)])
        velocity = speed * np.array([np.cos(b), -np.sin(b)])
        blade_hz = rng.uniform(6.0, 14.0)
        orders = sorted(rng.choice(np.arange(1, int(300 / blade_hz) + 1), size=6, replace=False))
        noise_band_rms = math.sqrt(self._noise_band_power)
        lines = tuple(
            (k * blade_hz, noise_band_rms * 10 ** (rng.uniform(-8.0, 2.0) / 20),
             rng.uniform(0, 2 * np.pi))
            for k in orders
        )
        t_cpa = t0 + duration / 2
        truth = SimulatedShip(
            round(t0 * fs), round((t0 + duration) * fs), round(t_cpa * fs),
            cpa_range, cpa_bearing, tuple(float(f) for f, _, _ in lines),
        )
        broadband = self._noise_rms * 10 ** (rng.uniform(0.0, 8.0) / 20)
        ship = _Ship(truth, t0, t0 + duration, t_cpa, cpa_xy, velocity, lines, broadband)
        self._ships.append(ship)
        self._active_ships.append(ship)
        self._next_ship_s = ship.t1_s + self._ship_gap()

    def _add_ships(self, out: np.ndarray, t: np.ndarray, ship_noise: np.ndarray) -> None:
        block_end_s = t[-1] + 1 / self.sample_rate
        while self._next_ship_s < block_end_s:
            self._start_ship(self._next_ship_s)
        for ship in self._active_ships:
            if ship.t0_s >= block_end_s:
                continue
            xy = ship.cpa_xy + np.outer(t - ship.t_cpa_s, ship.velocity)  # (frames, 2)
            fade_in = np.clip((t - ship.t0_s) / 60.0, 0.0, 1.0)
            fade_out = np.clip((ship.t1_s - t) / 60.0, 0.0, 1.0)
            fade = np.sin(0.5 * np.pi * fade_in) ** 2 * np.sin(0.5 * np.pi * fade_out) ** 2
            cpa_range = ship.truth.cpa_range_m
            for ch in range(self.channels):
                rng_m = np.hypot(*(xy - self._positions[ch]).T)
                level = fade * cpa_range / rng_m  # spherical spreading, 0 dB at CPA
                emitted = t - rng_m / self._c  # propagation delay: gives the true Doppler
                tonal = np.zeros_like(t)
                for freq, amp, ph in ship.lines:
                    tonal += amp * np.sin(2 * np.pi * freq * (emitted - ship.t0_s) + ph)
                out[:, ch] += level * (tonal + ship.broadband_gain * ship_noise[:, ch])
        self._active_ships = [s for s in self._active_ships if s.t1_s > block_end_s]


def _transient_wave(u: np.ndarray, tr: _Transient) -> np.ndarray:
    """Unit-gain transient at times ``u`` (seconds since onset; zero outside it)."""
    inside = (u >= 0.0) & (u < tr.duration_s)
    out = np.zeros_like(u)
    if not inside.any():
        return out
    ui = u[inside]
    kind = tr.truth.kind
    if kind == "knock":
        out[inside] = np.exp(-ui / tr.freqs[1]) * np.sin(2 * np.pi * tr.freqs[0] * ui
                                                         + tr.phases[0])
        return out
    env = _envelope(ui / tr.duration_s)
    if kind == "flow":
        wave = np.sin(2 * np.pi * np.outer(ui, tr.freqs) + tr.phases).sum(axis=1)
        out[inside] = env * wave / math.sqrt(tr.freqs.shape[0])
    else:  # strum: a tone gliding between two frequencies as the flow changes
        f0, f1 = tr.freqs
        phi = 2 * np.pi * (f0 * ui + (f1 - f0) * ui**2 / (2 * tr.duration_s))
        out[inside] = env * np.sin(phi + tr.phases[0])
    return out


def _unit_band_power(call: _Call, fs: int) -> float:
    """Mean power in SNR_BAND_HZ over the call's duration of the unit-amplitude call."""
    n = round(call.duration_s * fs)
    return _band_power_of(_upcall(np.arange(n) / fs, call), fs)


def _band_power_of(wave: np.ndarray, fs: int) -> float:
    """Mean power of ``wave`` inside SNR_BAND_HZ."""
    n = wave.shape[0]
    spec = np.fft.rfft(wave)
    f = np.fft.rfftfreq(n, 1 / fs)
    spec[(f < SNR_BAND_HZ[0]) | (f > SNR_BAND_HZ[1])] = 0
    return float(np.mean(np.fft.irfft(spec, n) ** 2))
