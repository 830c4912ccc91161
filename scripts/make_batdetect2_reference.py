"""Reference outputs of batdetect2 1.3.1 itself, for pamlive's parity tests (issue 16).

Run once with the Python that has batdetect2 and its dependencies (librosa, torch ...):

    /work/venv-bats/bin/python scripts/make_batdetect2_reference.py [--shared ../shared]

It writes ``tests/fixtures/batdetect2/<recording>.json`` (small: no audio, no weights):

* ``calls``: batdetect2's own calls for the whole file (``process_file`` with its API's
  defaults, chunk_size 3 s, and the detection threshold its README uses, 0.3), unrounded:
  start/end time, low/high frequency, species, class_prob, det_prob and every class
  probability (background excluded);
* ``excerpt``: one chunk of the file (the second 3 s chunk of a long file, else the first)
  followed through batdetect2's code path: the resampled audio (statistics and a slice),
  the spectrogram before its resize (a few frames, before PCEN and at the end) and the
  network outputs at the strongest detection-heatmap positions.

CI has torch and batdetect2's checkpoint but not librosa, so the tests check pamlive's
transforms and ONNX model against these numbers without running batdetect2.

With ``--figures`` it writes nothing and prints the parity figures of
docs/import-models.md ("Bats"): max |difference| between batdetect2's own code and
pamlive's resampling, each front-end transform, the rebuilt network and its ONNX export,
on every recording (it needs this repository's pamlive and onnxruntime importable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "batdetect2"
THRESHOLD = 0.3  # batdetect2's README: `batdetect2 detect AUDIO_DIR ANN_DIR 0.3`
CHUNK_S = 3.0  # batdetect2's API default (its CLI's --chunk_size defaults to 2)
SLICE = 256  # resampled samples stored around the loudest one
PEAKS = 8  # network output positions stored


def recordings(shared: Path) -> list[Path]:
    return (sorted((shared / "data" / "bats").glob("*.wav"))
            + sorted((shared / "data" / "bats-batdetect2" / "audio").glob("*.wav")))


def calls(path: Path, model, config, class_names) -> list[dict]:
    """batdetect2's calls for one file, unrounded, in time order."""
    from batdetect2 import api

    preds = api.process_file(str(path), model, config={**config, "return_raw_preds": True})
    out = []
    for i in range(len(preds["det_probs"])):
        probs = [float(p) for p in preds["class_probs"][:, i]]
        best = max(range(len(probs)), key=probs.__getitem__)
        out.append({
            "start_s": float(preds["start_times"][i]),
            "end_s": float(preds["end_times"][i]),
            "low_hz": float(preds["low_freqs"][i]),
            "high_hz": float(preds["high_freqs"][i]),
            "species": class_names[best],
            "class_prob": probs[best],
            "det_prob": float(preds["det_probs"][i]),
            "probs": probs,
        })
    return out


def excerpt(path: Path, model, config) -> dict:
    """One chunk through batdetect2's compute path, sampled at a few places."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from batdetect2.utils import audio_utils as au

    rate, audio, file_rate = au.load_audio_and_samplerate(
        str(path), 1, config["target_samp_rate"], config["scale_raw_audio"])
    chunk = int(rate * CHUNK_S)
    index = 1 if audio.shape[0] > 2 * chunk else 0
    x = audio[index * chunk:(index + 1) * chunk]
    spec_params = {k: config[k] for k in (
        "fft_win_length", "fft_overlap", "spec_height", "resize_factor", "spec_divide_factor",
        "max_freq", "min_freq", "spec_scale", "denoise_spec_avg", "max_scale_spec")}
    padded = au.pad_audio(x, rate, config["fft_win_length"], config["fft_overlap"],
                          config["resize_factor"], config["spec_divide_factor"])
    final, _ = au.generate_spectrogram(padded, rate, spec_params)
    magnitude = au.gen_mag_spectrogram(padded, rate, config["fft_win_length"],
                                       config["fft_overlap"])
    max_row = round(config["max_freq"] * config["fft_win_length"])
    min_row = round(config["min_freq"] * config["fft_win_length"])
    cropped = magnitude[-max_row:magnitude.shape[0] - min_row]
    width = final.shape[1]
    loud = int(np.argmax(final.sum(0)))
    frames = sorted({0, width // 3, loud, width - 1})
    peak = int(np.argmax(np.abs(x)))
    a = int(min(max(peak - SLICE // 2, 0), max(x.shape[0] - SLICE, 0)))

    spec = torch.from_numpy(final)[None, None]
    spec = F.interpolate(spec, size=(int(config["spec_height"] * config["resize_factor"]),
                                     int(width * config["resize_factor"])),
                         mode="bilinear", align_corners=False)
    with torch.no_grad():
        out = model(spec)
    det = out.pred_det[0, 0].numpy()
    order = np.argsort(det.ravel())[::-1][:PEAKS]
    ys, xs = np.unravel_index(order, det.shape)
    return {
        "chunk_index": index,
        "chunk_start_s": index * CHUNK_S,
        "file_rate": int(file_rate),
        "audio": {
            "samples": int(x.shape[0]),
            "sum": float(np.sum(x, dtype=np.float64)),
            "sum_sq": float(np.sum(np.square(x, dtype=np.float64))),
            "max_abs": float(np.max(np.abs(x))),
            "slice_start": a,
            "slice": [float(v) for v in x[a:a + SLICE]],
        },
        "spectrogram": {
            "padded_samples": int(padded.shape[0]),
            "shape": list(final.shape),
            "frames": frames,
            "cropped_magnitude": [[float(v) for v in cropped[:, f]] for f in frames],
            "final": [[float(v) for v in final[:, f]] for f in frames],
            "final_sum": float(np.sum(final, dtype=np.float64)),
        },
        "network": {
            "shape": list(det.shape),
            "positions": [[int(y), int(x_)] for y, x_ in zip(ys, xs, strict=True)],
            "detection": [float(det[y, x_]) for y, x_ in zip(ys, xs, strict=True)],
            "size": [[float(v) for v in out.pred_size[0, :, y, x_]]
                     for y, x_ in zip(ys, xs, strict=True)],
            "classes": [[float(v) for v in out.pred_class[0, :, y, x_]]
                        for y, x_ in zip(ys, xs, strict=True)],
        },
    }


def _maxdiff(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def figures(files: list[Path], model, config) -> None:
    """Print max |d| per stage: batdetect2 vs pamlive, on every recording."""
    import librosa
    import numpy as np
    import soundfile as sf
    import torch
    import torch.nn.functional as F
    from batdetect2.utils import audio_utils as au

    sys.path.insert(0, str(REPO))
    from pamlive.dsp import bat_frontend as bf
    from pamlive.dsp.features import Features
    from pamlive.dsp.resample import StreamResampler
    from pamlive.dsp.segment_resample import resample_segment
    from pamlive.importers import batdetect2 as bd

    path = bd.find_checkpoint(Path(au.__file__).parents[1])
    params, state = bd.load_checkpoint(path)
    net = bd.build_network(params, state, path)
    onnx_model = bd.export_onnx(net, bd.spec_rows(params), path)
    rate = int(config["target_samp_rate"])
    win, ovl = config["fft_win_length"], config["fft_overlap"]
    fft, hop = int(win * rate), int(win * rate) - int(ovl * int(win * rate))
    print("recording | in rate | resample: load_audio (stream) / load_audio_scipy (per 3 s) | "
          "pad, |STFT|, crop, pcen, denoise, chain | width: batdetect2 net vs rebuilt, "
          "rebuilt vs ONNX (detection, classes, size)")
    for wav in files:
        y, file_rate = sf.read(str(wav), dtype="float32")
        ref_audio = librosa.resample(y, orig_sr=file_rate, target_sr=rate, res_type="polyphase")
        stream = StreamResampler(file_rate, rate, 1)
        ours = np.concatenate([stream.process(y[:, None]), stream.flush()])[:, 0]
        chunk_in, chunk = int(file_rate * CHUNK_S), int(rate * CHUNK_S)
        per_chunk = np.concatenate([
            resample_segment(y[None, a:a + chunk_in], file_rate, rate, chunk)[0]
            for a in range(0, y.shape[0], chunk_in)])[:ref_audio.shape[0]]
        d_rs = (_maxdiff(ours, ref_audio), _maxdiff(per_chunk, ref_audio))
        x = ref_audio[:chunk]
        padded = au.pad_audio(x, rate, win, ovl, config["resize_factor"],
                              config["spec_divide_factor"])
        f = bf.batdetect2_pad(Features(x[None], float(rate)), fft, hop,
                              config["resize_factor"], config["spec_divide_factor"])
        d_pad = _maxdiff(f.data[0], padded)
        mag = au.gen_mag_spectrogram(padded, rate, win, ovl)
        f = bf.batdetect2_spectrogram(f, fft, hop)
        d_stft = _maxdiff(f.data[0], mag)
        top = round(config["max_freq"] * win)
        bottom = round(config["min_freq"] * win)
        cropped = mag[-top:mag.shape[0] - bottom]
        f = bf.batdetect2_crop(f, config["min_freq"], config["max_freq"])
        d_crop = _maxdiff(f.data[0], cropped)
        scaled = au.pcen(cropped, rate)
        f = bf.pcen(f, rate / 10, 512, float(2**31))
        d_pcen = _maxdiff(f.data[0], scaled)
        den = scaled - np.mean(scaled, 1)[:, np.newaxis]
        den.clip(min=0, out=den)
        f = bf.batdetect2_denoise(f)
        d_den = _maxdiff(f.data[0], den)
        spec_params = {k: config[k] for k in (
            "fft_win_length", "fft_overlap", "spec_height", "resize_factor",
            "spec_divide_factor", "max_freq", "min_freq", "spec_scale", "denoise_spec_avg",
            "max_scale_spec")}
        final, _ = au.generate_spectrogram(padded, rate, spec_params)
        d_chain = _maxdiff(f.data[0], final)
        nets = []
        for width in sorted({256, min(2048, final.shape[1]), final.shape[1]}):
            spec = final[None, :, :width]
            resized = F.interpolate(torch.from_numpy(spec)[None], size=(128, width // 2),
                                    mode="bilinear", align_corners=False)
            with torch.no_grad():
                out = model(resized)
            rebuilt, exported = bd.run_torch(net, spec), bd.run_onnx(onnx_model, spec)
            own = {"detection": out.pred_det.numpy(), "size": out.pred_size.numpy(),
                   "classes": out.pred_class.numpy()}
            keys = ("detection", "classes", "size")
            nets.append(f"{width}: " + "/".join(f"{_maxdiff(rebuilt[k], own[k]):.1e}"
                                                for k in keys)
                        + ", " + "/".join(f"{_maxdiff(exported[k], rebuilt[k]):.1e}"
                                          for k in keys))
        print(f"{wav.name} | {file_rate} | {d_rs[0]:.1e} / {d_rs[1]:.1e} | "
              f"{d_pad:.0e}, {d_stft:.1e}, {d_crop:.0e}, {d_pcen:.1e}, {d_den:.1e}, "
              f"{d_chain:.1e} | " + "; ".join(nets))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--figures", action="store_true",
                   help="print the parity figures instead of writing fixtures")
    args = p.parse_args()
    args.shared = args.shared.resolve()
    os.chdir("/")  # batdetect2's package folder holds a types.py that shadows the stdlib's
    import batdetect2
    import librosa
    import numpy as np
    import torch
    from batdetect2 import api
    from batdetect2.detector.parameters import DEFAULT_MODEL_PATH

    torch.set_num_threads(1)
    model, params = api.load_model(DEFAULT_MODEL_PATH)
    config = api.get_config(**{**params, "detection_threshold": THRESHOLD,
                               "chunk_size": CHUNK_S, "quiet": True})
    checkpoint = Path(DEFAULT_MODEL_PATH)
    meta = {
        "batdetect2": getattr(batdetect2, "__version__", "1.3.1"),
        "librosa": librosa.__version__, "numpy": np.__version__, "torch": torch.__version__,
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "detection_threshold": THRESHOLD, "chunk_size_s": CHUNK_S,
        "made_by": "scripts/make_batdetect2_reference.py",
    }
    files = recordings(args.shared)
    if not files:
        print(f"no recordings under {args.shared}/data", file=sys.stderr)
        return 2
    if args.figures:
        figures(files, model, config)
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path in files:
        doc = {"meta": meta,
               "recording": str(path.relative_to(args.shared)),
               "calls": calls(path, model, config, list(params["class_names"])),
               "excerpt": excerpt(path, model, config)}
        target = OUT / f"{path.stem}.json"
        target.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"{path.name}: {len(doc['calls'])} calls -> {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
