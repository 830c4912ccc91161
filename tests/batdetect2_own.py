"""batdetect2 1.3.1's own network class and decoder (``detector.models``,
``detector.post_process.run_nms``), importable without its audio dependencies, and the
call parity of issue 16 against its calls in tests/fixtures/batdetect2 (start within 1 ms,
frequency bounds within 1 kHz, same species, probabilities within 0.01).

Used by tests/test_importers_batdetect2.py and benchmarks/bench_bat_network.py.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf

from pamlive.dsp.chain import TransformChain
from pamlive.dsp.resample import StreamResampler
from pamlive.importers import batdetect2 as bd

FIXTURES = Path(__file__).parent / "fixtures" / "batdetect2"
START_TOL_S, FREQ_TOL_HZ, PROB_TOL = 1e-3, 1000.0, 0.01


def modules(monkeypatch: Any = None) -> tuple[Any, Any]:
    """batdetect2's ``detector.models`` and ``detector.post_process``, imported afresh with
    ``batdetect2.types`` (which imports audioread, soundfile ...) replaced by the names they
    use; through pytest's ``monkeypatch`` if given, so that a test leaves sys.modules as it
    found it."""

    class ModelOutput(NamedTuple):
        pred_det: Any
        pred_size: Any
        pred_class: Any
        pred_class_un_norm: Any
        features: Any

    stub = types.ModuleType("batdetect2.types")
    for name, value in (("ModelOutput", ModelOutput), ("NonMaximumSuppressionConfig", dict),
                        ("PredictionResults", dict)):
        setattr(stub, name, value)
    names = ("batdetect2.detector.models", "batdetect2.detector.model_helpers",
             "batdetect2.detector.post_process")
    if monkeypatch is None:
        sys.modules["batdetect2.types"] = stub
        for name in names:
            sys.modules.pop(name, None)
    else:
        monkeypatch.setitem(sys.modules, "batdetect2.types", stub)
        for name in names:
            monkeypatch.delitem(sys.modules, name, raising=False)
    return (importlib.import_module("batdetect2.detector.models"),
            importlib.import_module("batdetect2.detector.post_process"))


class Recording(NamedTuple):
    name: str
    chunks: list[np.ndarray]  # the front end's (220, W) per 3 s chunk
    calls: list[dict[str, Any]]  # batdetect2's


def recordings(shared: Path, chain: TransformChain) -> list[Recording]:
    """The fixtures' recordings resampled whole (as batdetect2 does), cut into its 3 s
    chunks, each through the package's front end."""
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        ref = json.loads(path.read_text(encoding="utf-8"))
        x, rate = sf.read(shared / ref["recording"], dtype="float32")
        resampler = StreamResampler(rate, 256000, 1)
        y = np.concatenate([resampler.process(x[:, None]), resampler.flush()])[:, 0]
        n = round(bd.CHUNK_S * 256000)
        chunks = [chain.apply(y[None, a:a + n])[0] for a in range(0, y.shape[0], n)]
        out.append(Recording(path.stem, chunks, ref["calls"]))
    return out


def nms_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """``run_nms``'s settings as batdetect2's ``process_file`` passes them, at the fixtures'
    detection threshold."""
    config = {k: bd.param(params, k) for k in (
        "nms_kernel_size", "max_freq", "min_freq", "fft_win_length", "fft_overlap",
        "resize_factor", "nms_top_k_per_sec")}
    meta = json.loads(next(FIXTURES.glob("*.json")).read_text(encoding="utf-8"))["meta"]
    return {**config, "detection_threshold": meta["detection_threshold"]}


def calls(run: Callable[[np.ndarray], list[np.ndarray]], rec: Recording,
          run_nms: Callable[..., Any], config: Mapping[str, Any],
          classes: list[str]) -> list[dict[str, Any]]:
    """Calls on one recording: ``run`` maps a chunk ``[1, 1, 220, W]`` to the network's
    detection, size and classes; batdetect2's ``run_nms`` decodes them."""
    import torch

    found = []
    for i, chunk in enumerate(rec.chunks):
        det, size, cls = (torch.from_numpy(np.asarray(o)) for o in run(chunk[None, None]))
        pred = run_nms((det, size, cls, None, None), config, np.array([256000.0]))[0][0]
        for k in range(len(pred["det_probs"])):
            probs = pred["class_probs"][:-1, k]
            found.append({"start_s": float(pred["start_times"][k]) + i * bd.CHUNK_S,
                          "low_hz": float(pred["low_freqs"][k]),
                          "high_hz": float(pred["high_freqs"][k]),
                          "species": classes[int(np.argmax(probs))],
                          "det_prob": float(pred["det_probs"][k]), "probs": probs})
    return found


class Parity(NamedTuple):
    reference: int = 0  # batdetect2's calls
    paired: int = 0  # with a found call at the same time and frequency bounds
    same_species: int = 0  # ... of the same species
    matching: int = 0  # ... whose probabilities are all within PROB_TOL
    max_dprob: float = 0.0  # over the paired calls
    max_dstart_s: float = 0.0

    def __add__(self, other: tuple[Any, ...]) -> Parity:
        b = Parity(*other)
        return Parity(self.reference + b.reference, self.paired + b.paired,
                      self.same_species + b.same_species, self.matching + b.matching,
                      max(self.max_dprob, b.max_dprob), max(self.max_dstart_s, b.max_dstart_s))


def parity(found: list[dict[str, Any]], reference: list[dict[str, Any]]) -> Parity:
    """batdetect2's calls against the found ones: paired by start (1 ms) and frequency
    bounds (1 kHz), then compared for species and probabilities (0.01)."""
    p = Parity(reference=len(reference))
    for ref in reference:
        near = [c for c in found if abs(c["start_s"] - ref["start_s"]) <= START_TOL_S
                and abs(c["low_hz"] - ref["low_hz"]) <= FREQ_TOL_HZ
                and abs(c["high_hz"] - ref["high_hz"]) <= FREQ_TOL_HZ]
        if not near:
            continue
        c = min(near, key=lambda c: abs(c["start_s"] - ref["start_s"]))
        dp = max(abs(c["det_prob"] - ref["det_prob"]),
                 float(np.max(np.abs(c["probs"] - np.asarray(ref["probs"])))))
        same = c["species"] == ref["species"]
        p = p + Parity(0, 1, int(same), int(same and dp <= PROB_TOL), dp,
                       abs(c["start_s"] - ref["start_s"]))
    return p
