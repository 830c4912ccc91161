"""Where the activity gate's level comes from (docs/bats.md, "Activity gate").

For every 3 s channel-window of the six reference recordings (hops 3 and 2.5 s; played
at gains 0.1, 1 and 10), the activity (pamlive/calls/gate.py) and whether the ungated
network finds a call above each detection threshold; and the activity of quiet audio: the
recordings' call-free stretches (no call above 0.05 within 10 ms, cut out and joined),
white and pink noise at four levels, digital silence, and clicks and rain (which should
open the gate). Prints, per threshold, the least activity of a channel-window with a call
and the most of the quiet ones (about two minutes of one core):

    PYTHONPATH=. python scripts/bat_gate_survey.py [--package DIR] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from pamlive.calls.decode import decode_calls
from pamlive.calls.gate import activity
from pamlive.inference.heatmaps import EventModel
from pamlive.inference.package import ModelPackage, load_model_package
from pamlive.windows import make_event_windower

THRESHOLDS = (0.1, 0.3, 0.5, 0.7)
RATE = 250000


def windows(model: EventModel, audio: np.ndarray, rate: int, hop: float
            ) -> list[tuple[float, float]]:
    """Per channel-window: (activity, the highest detection probability of its calls)."""
    package = model.package
    assert package.events is not None
    win = make_event_windower(package, rate, 1, hop)
    out = []
    for w in win.push(audio[:, None]) + win.flush():
        [heat] = model.run(w.features)
        calls = decode_calls(heat, package.events, 0.0, 0, package.class_names,
                             threshold=0.05, max_high_hz=rate / 2)
        out.append((float(activity(w.features)[0]), max((c.det_prob for c in calls),
                                                        default=0.0)))
    return out


def call_free(model: EventModel, audio: np.ndarray, rate: int) -> np.ndarray:
    """The stretches of ``audio`` without a call above 0.05 (hop 3 s) within 10 ms."""
    package = model.package
    assert package.events is not None
    win = make_event_windower(package, rate, 1, 3.0)
    busy = []
    for w in win.push(audio[:, None]) + win.flush():
        [heat] = model.run(w.features)
        busy += [(w.start_sample / rate + c.start_s - 0.01, w.start_sample / rate + c.end_s
                  + 0.01) for c in decode_calls(heat, package.events, 0.0, 0,
                                                package.class_names, threshold=0.05)]
    pieces, t = [], 0.0
    for a, b in [*sorted(busy), (audio.size / rate, audio.size / rate)]:
        if a - t >= 0.05:
            piece = audio[int(t * rate):int(a * rate)].copy()
            ramp = np.hanning(2 * 1250)[:1250]
            piece[:1250] *= ramp
            piece[-1250:] *= ramp[::-1]
            pieces.append(piece)
        t = max(t, b)
    return np.concatenate(pieces)


def quiet_audio(model: EventModel, recordings: list[Path]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    n = 9 * RATE
    quiet = {}
    for p in recordings:
        x, rate = sf.read(p, dtype="float32")
        if rate == RATE:
            quiet[f"call-free stretches of {p.stem}"] = np.resize(call_free(model, x, rate), n)
    for rms in (1e-4, 1e-3, 1e-2, 1e-1):
        quiet[f"white noise, rms {rms:g}"] = rng.normal(0, rms, n).astype(np.float32)
        spectrum = np.fft.rfft(rng.normal(0, 1, n))
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        pink = np.fft.irfft(spectrum, n)
        quiet[f"pink noise, rms {rms:g}"] = (pink / pink.std() * rms).astype(np.float32)
    quiet["digital silence"] = np.zeros(n, np.float32)
    base = quiet["white noise, rms 0.001"]
    for label, width, every, amp in (("clicks (one sample, 0.5)", 1, 0.2, 0.5),
                                     ("rain (0.1 ms bursts, 0.1)", 25, 0.02, 0.1)):
        x = base.copy()
        for start in np.arange(0.05, 8.9, every) * RATE:
            i = int(start)
            x[i:i + width] += amp * rng.choice([-1.0, 1.0], width)
        quiet[label] = x
    return quiet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", type=Path, help="a converted batdetect2 package")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    args = ap.parse_args()
    recordings = (sorted((args.shared / "data" / "bats").glob("*.wav"))
                  + sorted((args.shared / "data" / "bats-batdetect2" / "audio").glob("*.wav")))
    with tempfile.TemporaryDirectory() as tmp:
        package: ModelPackage
        if args.package is None:
            from pamlive.importers.batdetect2 import find_checkpoint, import_package

            package = load_model_package(import_package(find_checkpoint("batdetect2"),
                                                        Path(tmp) / "pkg"))
        else:
            package = load_model_package(args.package)
        model = EventModel(package)
        real = []
        for p in recordings:
            x, rate = sf.read(p, dtype="float32")
            for gain in (0.1, 1.0, 10.0):
                for hop in (3.0, 2.5):
                    real += windows(model, x * gain, rate, hop)
        print(f"{len(real)} channel-windows of {len(recordings)} recordings (gains 0.1, 1, "
              "10; hops 3, 2.5)")
        for t in THRESHOLDS:
            held = [a for a, d in real if d > t]
            print(f"  with a call above {t}: {len(held):3d}, least activity "
                  f"{min(held, default=float('nan')):.2f}")
        print("quiet audio (most activity over its channel-windows, hops 3, 2.5; best "
              "detection probability):")
        for label, x in quiet_audio(model, recordings).items():
            seen = windows(model, x, RATE, 3.0) + windows(model, x, RATE, 2.5)
            print(f"  {label:<42} {max(a for a, _ in seen):5.2f}   "
                  f"{max(d for _, d in seen):.2f}")


if __name__ == "__main__":
    main()
