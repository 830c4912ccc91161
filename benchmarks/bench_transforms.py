"""Transform-stage speed, side by side: the live path before and after streaming frames.

Run: ``python benchmarks/bench_transforms.py`` (one core: it pins BLAS/OpenMP threads to 1
and reports CPU time, medians of ``--repeats`` runs, all measured in the same run).

Part 1, per chain: real-time factors per channel (seconds of audio per CPU second,
higher is faster) of

* ``before``: the live path as it was: the ``Windower`` fed 0.1 s blocks, resampling
  the stream and running ``TransformChain.apply`` on every hop-spaced window (each
  window's frames computed from scratch);
* ``after``: the live path now, what ``pamlive run``/``analyze`` do: the same
  ``Windower`` and blocks, every frame computed once, windows assembled from frames and
  the window stage applied per window;
* ``numpy/scipy``: the same chain written plainly (``resample_poly`` on the whole
  recording; per window: fancy-index framing, window, ``np.fft.rfft``, ``np.abs``,
  per-frame ``np.interp``, numpy normalisation);
* ``floor`` / ``floor1``: the FFTs alone (``scipy.fft.rfft`` in the same cache-sized
  batches) of the frames the per-window path transforms / of each frame once.

Part 2: windowing CPU per channel-hour for the right whale chain, 8 channels at 96 kHz
in (the live CPU target's configuration), at hops of 1.0, 0.5, 0.25 and 0.1 s (issue 12
wants a finer hop), before and after, with the resampler alone for reference, and the
share of one core the windowing of the 8 channels takes in real time.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy import fft as sp_fft  # noqa: E402
from scipy import signal  # noqa: E402

from pamlive.dsp.chain import SpectrumStep, TransformChain, TransformSpec  # noqa: E402
from pamlive.windows import Windower  # noqa: E402

S = TransformSpec
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PAMLIVE_SHARED", REPO.parent / "shared"))


@dataclass
class Case:
    name: str
    input_rate: int
    channels: int
    segment_s: float
    hop_s: float
    specs: list[TransformSpec]
    audio: Callable[[], np.ndarray]  # (samples, channels) float32 at input_rate


def _tutorial_at(rate: int, seconds: float, channels: int) -> np.ndarray:
    x, sr = sf.read(
        SHARED / "data" / "pamguard-tutorial" / "PAM_20010327_091800.wav",
        dtype="float64",
        frames=int(8000 * seconds),
    )
    g = math.gcd(rate, sr)
    y = signal.resample_poly(x, rate // g, sr // g).astype(np.float32)
    return np.stack([np.roll(y, 997 * c) for c in range(channels)], axis=1)


def _bats(seconds: float, channels: int) -> np.ndarray:
    files = sorted((SHARED / "data" / "bats").glob("*.wav"))
    x = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])
    x = np.tile(x, math.ceil(seconds * 250000 / x.size))[: int(seconds * 250000)]
    return np.stack([np.roll(x, 7919 * c) for c in range(channels)], axis=1)


def cases(seconds: float) -> list[Case]:
    right_whale = [
        S("load_audio", {"sr": 2000}),
        S("spectrogram", {"fft": 256, "hop": 100}),
        S("freq_compression", {"bins": 40, "fmin": 47, "fmax": 357}),
        S("norm_row_sum"),
    ]
    ultrasonic = [
        S("load_audio", {"sr": 250000}),
        S("pre_emph", {"pre_empf_factor": 0.98}),
        S("spectrogram", {"fft": 512, "hop": 128}),
        S("freq_compression", {"bins": 128, "fmin": 15000, "fmax": 125000}),
        S("amplitude_to_decibel", {"min_db": -100}),
        S("normalize", {"min_db": -100, "ref_db": 0}),
        S("clamp"),
    ]
    highpass = S("filter_wav", {"filtertype": 1, "filtermethod": 0, "order": 4, "lowcut": 15000})
    ultrasonic_filtered = [*ultrasonic[:2], highpass, *ultrasonic[2:]]
    ketos_kw = [
        S("load_audio", {"sr": 10000}),
        S("normalize_wav"),
        S("spectrogramketos", {"fft": 510, "hop": 196, "window_size": 5.0686}),
        S("freq_compression", {"bins": 256, "fmin": 0, "fmax": 5000}),
        S("amplitude_to_decibel"),
        S("reduce_tonal_noise_median"),
        S("normalisestd", {"mean": 0.0, "std": 1.0}),
    ]
    return [
        Case(
            "(a) right whale, 96k in",
            96000,
            1,
            2.0,
            1.0,
            right_whale,
            lambda: _tutorial_at(96000, seconds, 1),
        ),
        Case(
            "(b) ultrasonic 250k, 8 ch", 250000, 8, 0.5, 0.25, ultrasonic, lambda: _bats(seconds, 8)
        ),
        Case(
            "(b') (b) + 4th-order high-pass",
            250000,
            8,
            0.5,
            0.25,
            ultrasonic_filtered,
            lambda: _bats(seconds, 8),
        ),
        Case(
            "(c) Ketos killer whale 10k",
            10000,
            1,
            5.0686,
            2.5,
            ketos_kw,
            lambda: _tutorial_at(10000, seconds, 1),
        ),
    ]


def _spectrum_step(chain: TransformChain) -> SpectrumStep:
    return next(s for s in chain.steps if isinstance(s, SpectrumStep))


def _blocks(case: Case, x: np.ndarray):
    block = case.input_rate // 10  # 0.1 s blocks, as a sound card delivers them
    return (x[i : i + block] for i in range(0, x.shape[0], block))


def _windower(case: Case, chain: TransformChain, share_frames: bool) -> Windower:
    w = Windower(chain, case.input_rate, case.channels, case.segment_s, case.hop_s)
    if not share_frames:  # the path as it was: the whole chain on every window
        w.cuts.features.stream = None
    return w


def run_before(case: Case, chain: TransformChain, x: np.ndarray) -> None:
    """The live path as it was: the Windower running the chain on every window."""
    w = _windower(case, chain, share_frames=False)
    for b in _blocks(case, x):
        w.push(b)
    w.flush()


def run_after(case: Case, chain: TransformChain, x: np.ndarray) -> None:
    """The live path now: the Windower (frames once, windows assembled from them)."""
    w = _windower(case, chain, share_frames=True)
    for b in _blocks(case, x):
        w.push(b)
    w.flush()


def run_resampler(case: Case, chain: TransformChain, x: np.ndarray) -> None:
    res = chain.resampler(case.input_rate, case.channels)
    for b in _blocks(case, x):
        res.process(b)


def _plain_segment_chain(specs: list[TransformSpec], segs: np.ndarray, sr: float) -> np.ndarray:
    """The chain written the obvious way with numpy/scipy (the comparison baseline)."""
    data, freqs = segs.astype(np.float64), None
    for spec in specs:
        p, name = spec.params, spec.name
        if name == "load_audio":
            continue
        if name == "pre_emph":
            data = signal.lfilter([1.0, -p["pre_empf_factor"]], [1.0], data, axis=-1)
        elif name == "filter_wav":
            kind = ("lowpass", "highpass", "bandpass")[p["filtertype"]]
            edge = {
                "lowpass": p.get("highcut"),
                "highpass": p.get("lowcut"),
                "bandpass": (p.get("lowcut"), p.get("highcut")),
            }[kind]
            b, a = signal.butter(p["order"], edge, kind, fs=sr)
            data = signal.lfilter(b, a, data, axis=-1)
        elif name == "normalize_wav":
            c = data - data.mean(axis=1, keepdims=True)
            data = c / c.max(axis=1, keepdims=True)
        elif name in ("spectrogram", "spectrogramketos"):
            fft, hop = p["fft"], p["hop"]
            if name == "spectrogram":
                n_frames, win = math.ceil(data.shape[1] / hop), signal.get_window("hann", fft)
            else:
                n_frames = math.ceil((p["window_size"] - fft / sr) * sr / hop)
                win = np.hamming(fft)
            pad = max(0, (n_frames - 1) * hop + fft - data.shape[1])
            x = np.pad(data, ((0, 0), (0, pad)))
            idx = np.arange(n_frames)[:, None] * hop + np.arange(fft)[None, :]
            data = np.abs(np.fft.rfft(x[:, idx] * win, axis=-1))
            if name == "spectrogramketos":
                data = data[..., : fft // 2 + 1 if (fft // 2) % 2 else fft // 2]
            freqs = np.arange(data.shape[-1]) * sr / fft
        elif name == "freq_compression":
            target = np.linspace(p["fmin"], p["fmax"], p["bins"])
            data = np.apply_along_axis(
                lambda row, f=freqs, t=target: np.interp(t, f, row), -1, data
            )
        elif name == "norm_row_sum":
            data = data / data.sum(axis=-1, keepdims=True)
        elif name == "amplitude_to_decibel":
            data = np.maximum(20 * np.log10(np.maximum(data, 1.42e-14)), p.get("min_db", -500))
        elif name == "normalize":
            data = 2 * ((data - p["ref_db"] - p["min_db"]) / -p["min_db"]) - 1.1407
        elif name == "clamp":
            data = np.clip(data, 0.0, 1.0)
        elif name == "reduce_tonal_noise_median":
            data = data - np.median(data, axis=1, keepdims=True)
        elif name == "normalisestd":
            flat = data.reshape(data.shape[0], -1)
            m, s = flat.mean(1)[:, None, None], flat.std(1)[:, None, None]
            data = (data - m) / s
        else:
            raise ValueError(f"baseline has no {name}")
    return data.astype(np.float32)


def run_numpy(case: Case, chain: TransformChain, x: np.ndarray) -> None:
    sr = chain.sample_rate
    g = math.gcd(case.input_rate, sr)
    y = (
        x
        if sr == case.input_rate
        else signal.resample_poly(x, sr // g, case.input_rate // g, axis=0)
    )
    seg, hop = round(case.segment_s * sr), round(case.hop_s * sr)
    for start in range(0, y.shape[0] - seg + 1, hop):
        _plain_segment_chain(case.specs, y[start : start + seg].T, sr)


def fft_floor_frames(case: Case, chain: TransformChain, n_samples: int, live: bool) -> np.ndarray:
    """As many frames as the per-window path transforms (``live``), or each frame once."""
    step = _spectrum_step(chain)
    sr = chain.sample_rate
    n_out = math.ceil(n_samples * sr / case.input_rate)
    if live:
        seg, hop = round(case.segment_s * sr), round(case.hop_s * sr)
        n_frames = len(range(0, n_out - seg + 1, hop)) * step.frame_count(seg)
    else:
        n_frames = n_out // step.plan.hop
    shape = (n_frames * case.channels, step.plan.fft)
    return np.random.default_rng(0).standard_normal(shape)


def fft_in_chunks(frames: np.ndarray) -> None:
    """The floor: ``scipy.fft.rfft`` on the frames, in the cache-sized batches pamlive uses."""
    chunk = max(1, (1 << 17) // frames.shape[1])
    for r0 in range(0, frames.shape[0], chunk):
        sp_fft.rfft(frames[r0 : r0 + chunk], axis=-1)


def _cpu_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def chain_table(args: argparse.Namespace) -> None:
    wanted = set(args.chains.split(","))
    print(
        f"{'chain':31} {'before':>7} {'after':>7} {'numpy':>7} {'floor':>7} {'floor1':>7} "
        f"{'before/after':>12} {'numpy/after':>11} {'after/floor1':>12}"
    )
    for case in cases(args.seconds):
        if case.name[1:].split(")")[0] not in wanted:
            continue
        chain = TransformChain(case.specs)
        x = case.audio()
        audio_s = x.shape[0] / case.input_rate * case.channels  # channel-seconds
        frames = fft_floor_frames(case, chain, x.shape[0], live=True)
        frames_once = fft_floor_frames(case, chain, x.shape[0], live=False)
        for fn in (run_before, run_after, run_numpy):  # warm up (JIT cache load, FFT plans)
            fn(case, chain, x[: case.input_rate * 6])
        t_before = _cpu_seconds(lambda c=case, ch=chain, a=x: run_before(c, ch, a), args.repeats)
        t_after = _cpu_seconds(lambda c=case, ch=chain, a=x: run_after(c, ch, a), args.repeats)
        t_np = _cpu_seconds(lambda c=case, ch=chain, a=x: run_numpy(c, ch, a), args.repeats)
        t_fft = _cpu_seconds(lambda f=frames: fft_in_chunks(f), args.repeats)
        t_fft1 = _cpu_seconds(lambda f=frames_once: fft_in_chunks(f), args.repeats)
        rtf = [audio_s / t for t in (t_before, t_after, t_np, t_fft, t_fft1)]
        stages = "frame + window stage" if chain.frame_steps else "no frame stage: per window"
        print(
            f"{case.name:31} "
            + " ".join(f"{r:6.0f}x" for r in rtf)
            + f" {t_before / t_after:11.2f}x {t_np / t_after:10.1f}x {t_after / t_fft1:11.2f}x"
            + f"  ({stages})"
        )
        if case.channels > 1:
            per_s = audio_s / case.channels
            print(
                f"{'':31} {case.channels} channels in real time: {t_before / per_s:.1%} of one "
                f"core before, {t_after / per_s:.1%} after"
            )
    print(
        "columns: real-time factors per channel (channel-seconds of audio per CPU second) of "
        "the live path before and after, numpy/scipy, the FFTs of the per-window frames "
        "(floor) and of each frame once (floor1); then CPU-time ratios"
    )


def hop_table(args: argparse.Namespace) -> None:
    """Right whale chain, 8 channels at 96 kHz in: windowing CPU per channel-hour by hop."""
    base = cases(args.seconds)[0]
    chain = TransformChain(base.specs)
    x = np.repeat(base.audio(), 8, axis=1)
    ch_hours = x.shape[0] / base.input_rate / 3600 * 8  # channel-hours
    core = 1 / (x.shape[0] / base.input_rate)  # CPU seconds -> share of one core
    res_case = Case(base.name, base.input_rate, 8, base.segment_s, 1.0, base.specs, base.audio)
    t_res = _cpu_seconds(lambda: run_resampler(res_case, chain, x), args.repeats)
    print(
        f"\nright whale chain, 8 channels at 96 kHz in, 2 s windows: windowing CPU seconds per "
        f"channel-hour (median of {args.repeats}); resampler alone {t_res / ch_hours:.2f} s "
        f"({t_res * core:.2%} of one core)"
    )
    print(f"{'hop':>6} {'windows/h':>9} {'before':>8} {'after':>8} {'before/after':>12} "
          f"{'8 ch in real time, share of one core: before':>45} {'after':>6}")
    for hop_s in (1.0, 0.5, 0.25, 0.1):
        case = Case(base.name, base.input_rate, 8, base.segment_s, hop_s, base.specs, base.audio)
        run_before(case, chain, x[: case.input_rate * 6])
        run_after(case, chain, x[: case.input_rate * 6])
        t_before = _cpu_seconds(lambda c=case: run_before(c, chain, x), args.repeats)
        t_after = _cpu_seconds(lambda c=case: run_after(c, chain, x), args.repeats)
        print(f"{hop_s:5.2f}s {3600 / hop_s:9.0f} {t_before / ch_hours:7.2f}s "
              f"{t_after / ch_hours:7.2f}s {t_before / t_after:11.2f}x "
              f"{t_before * core:45.2%} {t_after * core:6.2%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="audio per chain")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chains", default="a,b,b',c", help="which chains, e.g. a,c")
    ap.add_argument("--no-hops", action="store_true", help="skip the hop table")
    args = ap.parse_args(argv)
    print(
        f"pamlive transform-stage benchmark: {args.seconds:g} s of audio per chain, "
        f"median of {args.repeats}, CPU time on one core"
    )
    chain_table(args)
    if not args.no_hops:
        hop_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
