"""Teacher scores on the DCLDE recordings: Koogu's NARW model (and Ketos, when imported).

Why: the 53 labelled calls come from one day; the teachers were trained on other
data, so where they agree on the unlabelled days they give pseudo-labels (calls) and
hard negatives (nothing there) from days the labels never saw. Scores are cached per
file (``.npz`` under ``--cache``, outside the repository: they are derived from
``../shared``).

    python training/narw_teachers.py            # Koogu scores of every file, 0.25-s hop
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[1]
KOOGU = Path("models/koogu-narw/koogu_narw_model")
KOOGU_RATE, KOOGU_SAMPLES = 1000, 2250
HOP_S = 0.25
DEFAULT_CACHE = Path.home() / ".cache/pamlive-narw"  # derived from ../shared: never in the repo
V1_REV = "e6cbc65"  # the commit whose narw package is v1


def all_files(shared: Path) -> list[Path]:
    """The labelled training files and the unlabelled recordings of other days."""
    root = shared / "data/narw-dclde2013"
    return sorted((root / "train").glob("*/*.wav")) + sorted((root / "unlabelled").glob("*.wav"))


def koogu_scores(model_dir: Path, audio_2k: np.ndarray, hop_s: float = HOP_S
                 ) -> tuple[np.ndarray, np.ndarray]:
    """NARW score of every 2.25-s Koogu clip at ``hop_s``; returns (centre times s,
    scores). Clips are peak-normalised, as Koogu feeds them."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(model_dir)).signatures["with_transformation"]
    x = resample_poly(audio_2k.astype(np.float64), 1, 2).astype(np.float32)
    hop = int(hop_s * KOOGU_RATE)
    starts = np.arange(0, len(x) - KOOGU_SAMPLES + 1, hop)
    clips = np.stack([x[s : s + KOOGU_SAMPLES] for s in starts])
    clips /= np.maximum(np.abs(clips).max(axis=1, keepdims=True), 1e-9)
    out = [fn(inputs=tf.constant(clips[i : i + 512]))["scores"].numpy()[:, 0]
           for i in range(0, len(clips), 512)]
    return (starts + KOOGU_SAMPLES / 2) / KOOGU_RATE, np.concatenate(out)


def cached_koogu(shared: Path, wav: Path, cache: Path = DEFAULT_CACHE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Koogu (centre times, scores) for ``wav``, computed once."""
    path = cache / f"koogu_{wav.stem}.npz"
    if not path.exists():
        audio, rate = sf.read(str(wav), dtype="float32")
        assert rate == 2000, wav
        t, s = koogu_scores(shared / KOOGU, audio)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, t=t, s=s)
    z = np.load(path)
    return z["t"], z["s"]


def package_scores(package_dir: Path, audio_2k: np.ndarray, hop_s: float = HOP_S,
                   onnx_path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positive-class score (output column 1) of a 2-kHz-input pamlive package on every
    window at ``hop_s``: (window centres s, scores). ``onnx_path`` swaps the network."""
    import onnxruntime as ort

    from pamlive.inference.classifier import Classifier
    from pamlive.inference.package import load_model_package

    package = load_model_package(package_dir)
    chain = package.chain()
    seg = package.segment_samples
    x = audio_2k if package.sample_rate == 2000 else resample_poly(
        audio_2k.astype(np.float64), package.sample_rate, 2000).astype(np.float32)
    hop = int(hop_s * package.sample_rate)
    starts = np.arange(0, len(x) - seg + 1, hop)
    feats = chain.apply(np.stack([x[s : s + seg] for s in starts]))
    if onnx_path is None:
        scores = Classifier(package).predict(feats)[:, 1]
    else:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        scores = sess.run(None, {sess.get_inputs()[0].name: feats[..., None]})[0][:, 1]
    return (starts + seg / 2) / package.sample_rate, scores


def cached_v1(wav: Path, cache: Path = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """v1 (window starts, scores) for ``wav``; v1's network is taken from git history
    (revision ``V1_REV``) into ``cache/v1_model.onnx``."""
    path = cache / f"v1_{wav.stem}.npz"
    if not path.exists():
        v1 = cache / "v1_model.onnx"
        if not v1.exists():
            cache.mkdir(parents=True, exist_ok=True)
            v1.write_bytes(subprocess.run(
                ["git", "-C", str(REPO), "show", f"{V1_REV}:pamlive/models/narw/model.onnx"],
                capture_output=True, check=True).stdout)
        audio, _ = sf.read(str(wav), dtype="float32")
        t, s = package_scores(REPO / "pamlive/models/narw", audio,
                              onnx_path=cache / "v1_model.onnx")
        np.savez(path, t=t - 1.0, s=s)  # window starts
    z = np.load(path)
    return z["t"], z["s"]


def cached_ketos(wav: Path, cache: Path = DEFAULT_CACHE) -> tuple[np.ndarray, np.ndarray]:
    """Ketos ``narw.kt`` (3-s window centres, scores at 0.5-s hop), from the package
    ``pamlive import-model ../shared/models/ketos-narw/narw.kt -o CACHE/ketos-narw
    --classes noise,right_whale`` writes."""
    path = cache / f"ketos_{wav.stem}.npz"
    if not path.exists():
        audio, _ = sf.read(str(wav), dtype="float32")
        t, s = package_scores(cache / "ketos-narw", audio, hop_s=0.5)
        np.savez(path, t=t, s=s)
    z = np.load(path)
    return z["t"], z["s"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = p.parse_args()
    for wav in all_files(args.shared):
        _, s = cached_koogu(args.shared, wav, args.cache)
        _, v1 = cached_v1(wav, args.cache)
        _, ketos = cached_ketos(wav, args.cache)
        print(f"{wav.name}: {len(s)} clips, Koogu >=0.98: {(s >= 0.98).sum()}, "
              f">=0.999: {(s >= 0.999).sum()}; v1 windows >= 0.9: {(v1 >= 0.9).sum()}; "
              f"Ketos windows >= 0.9: {(ketos >= 0.9).sum()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
