"""An event model's heatmaps -> calls, as batdetect2's ``run_nms`` decodes them.

batdetect2 1.3.1 (``detector/post_process.py``): max-pool non-maximum suppression (a
pixel is kept where it equals the maximum of its ``k x k`` neighbourhood, padding never
wins), the ``int(duration * nms_top_k_per_sec)`` highest pixels, of which those strictly
above the detection threshold are calls. ``duration`` is batdetect2's own, the time of the
output's width read as a frame index (so about half the window: it never divides by the
resize factor there, and pamlive keeps that). A call at column ``x``, row ``y`` starts at
frame ``x / resize_factor`` and ends ``size[0]`` columns later; its low frequency is row
``y`` counted from the top band edge, its high one ``size[1]`` rows above. Class
probabilities are the ``classes`` output at the peak without the background (the last).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pamlive.calls.call import Call
from pamlive.inference.event_spec import EventSpec


def local_maxima(heat: np.ndarray, kernel: int, threshold: float) -> np.ndarray:
    """Flat indices of the pixels of ``heat`` ``(H, W)`` strictly above ``threshold`` (in
    the heatmap's precision) that equal the maximum of their ``kernel``-square
    neighbourhood (torch's ``max_pool2d`` padded with -inf: flat tops keep every pixel).

    Only those can be calls, and whatever outranks one in batdetect2's top-k is one too, so
    looking at them alone gives its result at a fraction of the work of filtering the
    whole map.
    """
    flat = heat.ravel()
    found = np.flatnonzero(flat > heat.dtype.type(threshold))
    if found.size == 0:
        return found
    r = kernel // 2
    around = sliding_window_view(np.pad(heat, r, constant_values=-np.inf), (kernel, kernel))
    ys, xs = np.divmod(found, heat.shape[1])
    return found[around[ys, xs].max(axis=(1, 2)) == flat[found]]


def top_k(scores: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` of ``indices`` with the highest ``scores``, the lower index first among
    equals (as torch's ``topk`` chooses)."""
    order = np.lexsort((indices, -scores[indices]))
    return indices[order[:k]]


def decode_calls(outputs: Mapping[str, np.ndarray], spec: EventSpec, window_start_s: float,
                 channel: int, class_names: Sequence[str], *,
                 threshold: float | None = None,
                 max_high_hz: float | None = None) -> list[Call]:
    """The calls of one window and channel, in time order.

    ``outputs``: ``detection`` ``(1, H, W)``, ``size`` ``(2, H, W)``, ``classes``
    ``(C[+1], H, W)`` (background last, dropped); times are ``window_start_s`` plus the
    offset in the window. ``threshold`` replaces the package's detection threshold;
    ``max_high_hz`` drops calls whose (whole-Hz) high frequency lies above it, as
    batdetect2 drops those above the recording's Nyquist frequency.
    """
    heat = np.asarray(outputs["detection"])[0]
    size = np.asarray(outputs["size"])
    classes = np.asarray(outputs["classes"])[: len(class_names)]
    height, width = heat.shape
    duration = (width * spec.step_samples + spec.offset_samples) / spec.sample_rate
    cut = spec.threshold(threshold)
    chosen = top_k(heat.ravel(), local_maxima(heat, spec.nms_kernel_size, cut),
                   int(duration * spec.nms_top_k_per_sec))
    ys, xs = np.divmod(chosen, width)
    order = np.lexsort((ys, xs))
    ys, xs = ys[order], xs[order]
    rescale = (spec.max_freq_hz - spec.min_freq_hz) / height
    widths, heights = size[0, ys, xs], size[1, ys, xs]
    calls = []
    for y, x, w, h in zip(ys.tolist(), xs.tolist(), widths.tolist(), heights.tolist(),
                          strict=True):
        low = (height - y) * rescale + spec.min_freq_hz
        high = low + h * rescale
        if max_high_hz is not None and math.floor(high) > max_high_hz:
            continue
        probs = classes[:, y, x].astype(np.float64)
        best = int(np.argmax(probs))
        calls.append(Call(
            start_s=window_start_s + _time(spec, x),
            end_s=window_start_s + _time(spec, x + w),
            low_hz=low, high_hz=high, species=class_names[best],
            class_prob=float(probs[best]), det_prob=float(heat[y, x]), channel=channel,
            probs=dict(zip(class_names, probs.tolist(), strict=True)),
        ))
    return calls


def _time(spec: EventSpec, column: float) -> float:
    """Seconds from the window's start to output column ``column``."""
    frame = column / spec.resize_factor
    return (frame * spec.step_samples + spec.offset_samples) / spec.sample_rate
