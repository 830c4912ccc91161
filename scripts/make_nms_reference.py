"""Reference outputs of batdetect2's own ``run_nms`` on synthetic heatmaps, for
``tests/test_calls_decode.py`` (run once with batdetect2 installed; writes
``tests/fixtures/batdetect2_nms/cases.npz``).

The heatmaps are made here from a seeded generator (no recording, no checkpoint), on a
grid of exactly representable values (k / 65536), so that the test rebuilds the very
float32 inputs batdetect2 saw. Cases: smooth blobs; flat-topped plateaus with many
equal values (ties in the suppression and at the top-k boundary); peaks exactly at the
threshold; a window with nothing above the threshold; a 3 s window with more peaks
than its top-k.

    /work/venv-bats/bin/python scripts/make_nms_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from batdetect2.detector import post_process as pp
from batdetect2.detector.parameters import DEFAULT_PROCESSING_CONFIGURATIONS as DEFAULTS

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "batdetect2_nms" / "cases.npz"
RATE = 256000
HEIGHT = 128
CLASSES = 4  # + background


def _blobs(rng: np.random.Generator, width: int, count: int) -> np.ndarray:
    yy, xx = np.mgrid[:HEIGHT, :width]
    heat = np.zeros((HEIGHT, width))
    for _ in range(count):
        y, x = rng.uniform(0, HEIGHT), rng.uniform(0, width)
        s = rng.uniform(1.0, 4.0)
        heat = np.maximum(heat, rng.uniform(0, 1) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2)
                                                             / (2 * s * s)))
    return heat


def _plateaus(rng: np.random.Generator, width: int, top: int) -> np.ndarray:
    """Flat 4 x 4 blocks of levels 0 .. top-1 sixteenths: every pixel of a block that is a
    local maximum survives the suppression, so equal scores abound."""
    levels = rng.integers(0, top, size=(HEIGHT // 4, width // 4)) / 16
    return np.kron(levels, np.ones((4, 4)))[:HEIGHT, :width]


def _one_high_block(rng: np.random.Generator, width: int) -> np.ndarray:
    """Peaks at exactly 0.5 (= the threshold) and one block of 16 equal pixels above it:
    more equal scores above the threshold than the top-k keeps."""
    heat = _plateaus(rng, width, 9)
    heat[60:64, 20:24] = 9 / 16
    return heat


def _coarse(rng: np.random.Generator, shape: tuple[int, int, int], top: int) -> np.ndarray:
    """Random integers below ``top``, constant over 8 x 8 pixels (a small fixture)."""
    n, h, w = shape
    cells = rng.integers(0, top, size=(n, -(-h // 8), -(-w // 8)))
    return np.kron(cells, np.ones((1, 8, 8), np.int64))[:, :h, :w]


def _case(rng: np.random.Generator, heat: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    width = heat.shape[1]
    q_heat = np.clip(np.round(heat * 65536), 0, 65535).astype(np.uint16)
    q_size = _coarse(rng, (2, HEIGHT, width), 40).astype(np.uint8)
    q_classes = _coarse(rng, (CLASSES + 1, HEIGHT, width), 65536).astype(np.uint16)
    q_classes[:, 0, :] = 7  # a row of equal class probabilities: argmax ties
    det = torch.from_numpy(q_heat.astype(np.float32) / 65536)[None, None]
    size = torch.from_numpy(q_size.astype(np.float32))[None]
    classes = torch.from_numpy(q_classes.astype(np.float32) / 65536)[None]
    params = {k: DEFAULTS[k] for k in ("nms_kernel_size", "max_freq", "min_freq",
                                       "fft_win_length", "fft_overlap", "resize_factor",
                                       "nms_top_k_per_sec")}
    params["detection_threshold"] = threshold
    preds, _ = pp.run_nms((det, size, classes, None, None), params, np.array([float(RATE)]))
    p = preds[0]
    return {"heat": q_heat, "size": q_size, "classes": q_classes,
            "threshold": np.float64(threshold),
            **{f"ref_{k}": np.asarray(p[k]) for k in ("det_probs", "x_pos", "y_pos",
                                                      "start_times", "end_times", "low_freqs",
                                                      "high_freqs", "class_probs")}}


def main() -> None:
    rng = np.random.default_rng(20260101)
    cases = {
        "blobs": _case(rng, _blobs(rng, 64, 12), 0.01),
        "plateaus": _case(rng, _plateaus(rng, 64, 13), 0.5),
        "threshold_ties": _case(rng, _one_high_block(rng, 64), 0.5),
        "at_threshold": _case(rng, _plateaus(rng, 64, 9), 0.5),
        "empty": _case(rng, 0.009 * rng.random((HEIGHT, 64)), 0.01),
        "wide": _case(rng, _blobs(rng, 1504, 400), 0.01),
    }
    arrays = {f"{name}/{key}": value for name, case in cases.items()
              for key, value in case.items()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    for name, case in cases.items():
        print(f"{name}: {case['ref_det_probs'].size} call(s)")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
