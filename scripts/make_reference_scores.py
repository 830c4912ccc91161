"""Reference scores from the frameworks themselves (Ketos 2.7.1, Koogu 0.7.2), run ONCE.

Ketos needs TensorFlow <= 2.8 and Python <= 3.10, which cannot live beside pamlive's
TensorFlow 2.21, so this script runs in a separate virtual environment and writes small
fixtures that ``tests/test_importers_frameworks.py`` compares pamlive with in CI:

    python3.10 -m venv /tmp/fw && P=/tmp/fw/bin/pip
    $P install tensorflow-cpu==2.8.4 'protobuf<3.20' 'numpy<1.24' scipy pandas tables \\
        librosa soundfile structlog PyYAML datetime_glob matplotlib tqdm pint psutil \\
        version-parser scikit-learn scikit-image resampy audioread 'numba<0.59'
    $P install --no-deps --ignore-requires-python ketos==2.7.1 koogu==0.7.2
    /tmp/fw/bin/python scripts/make_reference_scores.py ../shared tests/fixtures/frameworks

Every score comes from the framework's own code path on a real recording:

* Ketos: ``AudioFrameLoader`` (as ``ketos-run`` builds it: ``pad=False``) with the model's
  ``audio_repr.json`` read by ``load_audio_representation_from_file``, the batch reshaped
  by ``transform_batch`` and scored by the network (``.kt``: Ketos' ``ResNetInterface``
  built from the recipe with the checkpoint weights; ``.ktpb``: the SavedModel in it).
* Koogu: ``Audio.load`` + ``Audio.buffer_to_clips`` + ``Audio.normalize`` (what
  ``koogu.inference.recognize`` does) and the ``with_transformation`` signature; for the
  ``.kgu`` its PAMGuard settings give the rate, and its Butterworth high-pass is applied
  the way Koogu applies a ``filterspec`` (``sosfiltfilt`` over the whole recording).

The recordings are brought to each model's rate ONCE, over the whole file, with
``scipy.signal.resample_poly`` (what pamlive's stream resampler computes) and written as
float WAV files, so the framework reads audio at its own rate and the comparison is of
the front end and the network, not of two resamplers (see docs/import-models.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

# recordings (under ../shared/data) and the rate each model takes; each fixture keeps
# the scores of every window and the framework's representation of a few of them
CASES = {
    "ketos-narw": ("models/ketos-narw/narw.kt",
                   "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_000000.wav", 1000, 1.0),
    "ketos-kw": ("models/ketos-killer-whale/hallo-kw-det_v1.ktpb",
                 "data/pamguard-tutorial/PAM_20010327_091800.wav", 10000, 1.0),
    "koogu-bw": ("models/koogu-blue-whale-24/blue_whale_24.kgu",
                 "data/narw-dclde2013/train/background/GSC_2000-05-19_00-00-00.wav", 250, 1.0),
    "koogu-narw": ("models/koogu-narw/koogu_narw_model",
                   "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_000000.wav", 1000, 0.5),
}
# the same models on recordings at their own rate (2 kHz), which the framework resamples
# itself: Ketos per segment (librosa's "scipy" FFT resampling of each extended segment),
# Koogu per file (resampy "kaiser_best"); scores only, to measure what the resampler
# alone changes (docs/import-models.md)
NATIVE = {"ketos-narw-native": "ketos-narw", "koogu-narw-native": "koogu-narw",
          "ketos-kw-native": "ketos-kw"}
KEEP_REPRESENTATIONS = 3  # windows whose front-end output is stored (float16)


def at_rate(path: Path, rate: int) -> np.ndarray:
    """A recording as float32 at ``rate``: whole-file polyphase resampling."""
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    g = np.gcd(int(sr), rate)
    return resample_poly(x[:, 0], rate // g, int(sr) // g).astype(np.float32)


def ketos_scores(model_file: Path, wav: Path, step: float, work: Path) -> dict:
    from ketos.audio import load_audio_representation_from_file
    from ketos.audio.audio_loader import AudioFrameLoader
    from ketos.neural_networks.resnet import ResNetInterface

    (_, rep), = load_audio_representation_from_file(str(model_file))[0].items()
    loader = AudioFrameLoader(duration=rep["duration"], pad=False, step=step, batch_size=1,
                              filename=[str(wav)], representation=rep["type"],
                              representation_params=rep)
    specs, starts = [], []
    for _ in range(loader.num()):
        spec = next(loader)
        specs.append(spec.get_data())
        starts.append(spec.start)
    x = ResNetInterface.transform_batch(np.stack(specs), None)
    with zipfile.ZipFile(model_file) as zf:
        zf.extractall(work)
    if model_file.suffix == ".kt":
        # ketos' own ResNet from the recipe, the checkpoint's weights (NNInterface._load_model
        # with the checkpoint named explicitly)
        recipe = ResNetInterface._read_recipe_file(str(work / "recipe.json"))
        net = ResNetInterface._build_from_recipe(recipe)
        ckpt = (work / "checkpoints/checkpoint").read_text().split('"')[1]
        net.model.load_weights(str(work / "checkpoints" / ckpt)).expect_partial()
        scores = np.concatenate([net.run_on_batch(x[i:i + 32], transform_input=False,
                                                  return_raw_output=True)
                                 for i in range(0, len(x), 32)])
    else:  # .ktpb: the SavedModel Ketos exported
        import tensorflow as tf

        fn = tf.saved_model.load(str(work / "model")).signatures["serving_default"]
        scores = np.concatenate([next(iter(fn(tf.constant(x[i:i + 16], tf.float32)).values()))
                                 .numpy() for i in range(0, len(x), 16)])
    return {"start_s": np.asarray(starts, np.float64), "scores": scores.astype(np.float32),
            "representation": np.stack(specs)}


def koogu_scores(model: Path, wav: Path, rate: int, step: float, work: Path) -> dict:
    import tensorflow as tf
    from koogu.data.raw import Audio, Filters

    if model.suffix == ".kgu":
        with zipfile.ZipFile(model) as zf:
            zf.extractall(work)
        meta = json.loads((work / "audio_repr_pg.json").read_text())
        clip_len = round(meta["seg_size"]["size_ms"] / 1000 * rate)
        hp = next(t["params"] for t in meta["transforms"] if t["name"] == "filter_wav")
        sos = Filters.butterworth_filter([hp["order"], [hp["lowcut"]], "highpass"], rate)
        saved = work
    else:
        clip_len, sos, saved = 2250, None, model
    data, fs = Audio.load(str(wav), rate)
    assert fs == rate
    channel = data[0]
    if sos is not None:
        from scipy.signal import sosfiltfilt

        channel = sosfiltfilt(sos, channel).astype(np.float32)
    clips, starts = Audio.buffer_to_clips(channel, clip_len, round(step * rate))
    clips = Audio.normalize(clips)
    fn = tf.saved_model.load(str(saved)).signatures["with_transformation"]
    scores = np.concatenate([fn(inputs=tf.constant(clips[i:i + 64]))["scores"].numpy()
                             for i in range(0, len(clips), 64)])
    return {"start_s": starts / rate, "scores": scores.astype(np.float32),
            "representation": clips}


def main(shared: Path, out: Path, only: list[str]) -> None:
    import ketos
    import koogu
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    for key, (model, recording, rate, step) in CASES.items():
        if only and key not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / f"{Path(recording).stem}_{rate}.wav"
            sf.write(wav, at_rate(shared / recording, rate), rate, subtype="FLOAT")
            if key.startswith("ketos"):
                ref = ketos_scores(shared / model, wav, step, Path(tmp) / "model")
            else:
                ref = koogu_scores(shared / model, wav, rate, step, Path(tmp) / "model")
        pick = np.linspace(1, len(ref["scores"]) - 2, KEEP_REPRESENTATIONS).astype(int)
        np.savez_compressed(
            out / f"{key}.npz", start_s=ref["start_s"], scores=ref["scores"],
            representation_index=pick,
            representation=ref["representation"][pick].astype(np.float16),
            info=json.dumps({"model": model, "recording": recording, "rate": rate,
                             "step_s": step, "ketos": ketos.__version__,
                             "koogu": getattr(koogu, "__version__", "0.7.2"),
                             "tensorflow": tf.__version__}))
        print(f"{key}: {len(ref['scores'])} windows, scores {ref['scores'][:, 0].min():.3f}"
              f"..{ref['scores'][:, 0].max():.3f}")
    for key, base in NATIVE.items():
        if only and key not in only:
            continue
        model, recording, rate, step = CASES[base]
        with tempfile.TemporaryDirectory() as tmp:
            run = ketos_scores if base.startswith("ketos") else koogu_scores
            args = (shared / model, shared / recording) + (() if run is ketos_scores else (rate,))
            ref = run(*args, step, Path(tmp) / "model")
        np.savez_compressed(out / f"{key}.npz", start_s=ref["start_s"], scores=ref["scores"],
                            info=json.dumps({"model": model, "recording": recording,
                                             "rate": rate, "step_s": step}))
        print(f"{key}: {len(ref['scores'])} windows")
    if not only or "ketos-tiny" in only:
        with tempfile.TemporaryDirectory() as tmp:
            for model in tiny_ketos_models(out, shared / TINY_RECORDING, Path(tmp)):
                ref = ketos_scores(model, shared / TINY_RECORDING, 0.5, Path(tmp) / model.suffix)
                key = model.name.replace(".", "-")
                if model.suffix == ".ktpb":  # the same network exported: same scores
                    kt_scores = np.load(out / "ketos-tiny-kt.npz")["scores"]
                    print(f"{key}: max |ktpb - kt| {np.abs(ref['scores'] - kt_scores).max():.1e}")
                    continue
                pick = np.linspace(1, len(ref["scores"]) - 2, KEEP_REPRESENTATIONS).astype(int)
                np.savez_compressed(
                    out / f"{key}.npz", start_s=ref["start_s"], scores=ref["scores"],
                    representation_index=pick,
                    representation=ref["representation"][pick].astype(np.float16),
                    info=json.dumps({"model": f"tests/fixtures/frameworks/{model.name}",
                                     "recording": TINY_RECORDING, "rate": 2000,
                                     "step_s": 0.5}))
                print(f"{key}: {len(ref['scores'])} windows, scores "
                      f"{ref['scores'][:, 1].min():.3f}..{ref['scores'][:, 1].max():.3f}")
    (out / "ketos_crops.json").write_text(json.dumps(ketos_crops(), indent=1) + "\n")



# a Ketos model that is not in ../shared, made here by Ketos itself (a small ResNet with
# seeded random weights, saved by NNInterface.save as .kt and exported by
# export_to_ketos_protobuf as .ktpb), with a representation that exercises a frequency
# crop, normalize_wav and a spectrogram normalize: the importer's general path
TINY_RECIPE = {"interface": "ResNetInterface", "block_sets": [1, 1], "n_classes": 2,
               "initial_filters": 4, "initial_strides": 1, "initial_kernel": [3, 3],
               "strides": 2, "kernel": [3, 3],
               "optimizer": {"recipe_name": "Adam", "parameters": {"learning_rate": 0.001}},
               "loss_function": {"recipe_name": "FScoreLoss", "parameters": {}},
               "metrics": [{"recipe_name": "CategoricalAccuracy", "parameters": {}}]}
TINY_REPR = {"spectrogram": {"type": "MagSpectrogram", "rate": "2000 Hz", "window": "0.128 s",
                             "step": "0.05 s", "freq_min": "47.2 Hz", "freq_max": "357.9 Hz",
                             "window_func": "hamming", "duration": "2.0 s",
                             "normalize_wav": "true",
                             "transforms": [{"name": "normalize", "mean": 0.0, "std": 1.0}]}}
# the same network on a second representation: Ketos' running-mean tonal noise removal
TINY_REPR_RTN = {"spectrogram": {**TINY_REPR["spectrogram"], "transforms": [
    {"name": "reduce_tonal_noise", "method": "RUNNING_MEAN", "time_constant": 1.0},
    {"name": "normalize", "mean": 0.0, "std": 1.0}]}}
TINY_RECORDING = "data/narw-dclde2013/train/narw/NOPP6_EST_20090328_001500.wav"


def tiny_ketos_models(out: Path, wav: Path, work: Path) -> tuple[Path, Path, Path]:
    import tensorflow as tf
    from ketos.audio.audio_loader import AudioFrameLoader
    from ketos.data_handling.parsing import parse_audio_representation
    from ketos.neural_networks.dev_utils.export import export_to_ketos_protobuf
    from ketos.neural_networks.resnet import ResNetInterface

    tf.random.set_seed(14)
    (work / "recipe.json").write_text(json.dumps(TINY_RECIPE))
    (work / "audio_repr.json").write_text(json.dumps(TINY_REPR))
    net = ResNetInterface._build_from_recipe(
        ResNetInterface._read_recipe_file(str(work / "recipe.json")))
    # scale and centre the last layer on real windows so that the scores spread over
    # (0, 1) instead of all lying near 0.5 (random weights) or saturating
    rep = parse_audio_representation(TINY_REPR)["spectrogram"]
    loader = AudioFrameLoader(duration=rep["duration"], step=7.0, filename=[str(wav)], pad=False,
                              representation=rep["type"], representation_params=rep)
    x = ResNetInterface.transform_batch(np.stack([next(loader).get_data() for _ in range(100)]),
                                        None)
    p = net.model(x).numpy()
    logit = np.log(p[:, 1]) - np.log(p[:, 0])
    gain = 3.0 / np.percentile(np.abs(logit - np.median(logit)), 90)
    dense = net.model.fully_connected
    dense.kernel.assign(dense.kernel * gain)
    dense.bias.assign([0.0, -gain * float(np.median(logit))])
    (work / "ckpt").mkdir()
    net.model.save_weights(str(work / "ckpt/cp-0000"))
    net.checkpoint_dir = str(work / "ckpt")
    kt, ktpb = out / "ketos-tiny.kt", work / "ketos-tiny.ktpb"  # .ktpb: 0.5 MB, not kept
    net.save(str(kt), checkpoint_name="cp-0000", audio_repr=str(work / "audio_repr.json"))
    export_to_ketos_protobuf(net, str(ktpb), audio_repr=str(work / "audio_repr.json"),
                             input_shape=[40, 81, 1], tmp_folder=str(work / "export"))
    rtn = out / "ketos-tiny-rtn.kt"
    with zipfile.ZipFile(kt) as src, zipfile.ZipFile(rtn, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, json.dumps(TINY_REPR_RTN) if name == "audio_repr.json"
                         else src.read(name))
    return kt, ktpb, rtn


def ketos_crops() -> list[dict]:
    """Which bins Ketos keeps for ``freq_min``/``freq_max``: (first bin, count) of the
    cropped MagSpectrogram within the full one, over settings that reach the edge cases
    (a cut value on a bin edge, at 0, at or past Nyquist)."""
    from ketos.audio.spectrogram import MagSpectrogram
    from ketos.audio.waveform import Waveform

    cases = []
    for rate, window, step in ((1000, 0.256, 0.032), (2000, 0.128, 0.05), (10000, 0.051, 0.01955)):
        wf = Waveform(data=np.random.default_rng(0).standard_normal(3 * rate), rate=rate)
        full = MagSpectrogram.from_waveform(wf, window=window, step=step, window_func="hamming")
        n, res = full.get_data().shape[1], full.freq_res()
        for fmin, fmax in ((0, rate / 2), (50, 300), (100, rate / 2), (47.2, 357.9),
                           (3.9, 400), (0, 250.5), (12 * res, 40 * res), (res / 2, rate),
                           (rate / 4, rate / 4 + 1)):
            crop = MagSpectrogram.from_waveform(wf, window=window, step=step,
                                                window_func="hamming", freq_min=fmin,
                                                freq_max=fmax).get_data()
            first = next(k for k in range(n)
                         if np.array_equal(full.get_data()[:, k], crop[:, 0]))
            cases.append({"rate": rate, "window": window, "step": step, "freq_min": fmin,
                          "freq_max": fmax, "first_bin": first, "bins": crop.shape[1]})
    return cases


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])  # optional: model keys to redo
