"""decode_calls against batdetect2's own run_nms (fixture: scripts/make_nms_reference.py)."""

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import maximum_filter

from pamlive.calls.decode import decode_calls, local_maxima
from pamlive.inference.event_spec import EventSpec

CASES = Path(__file__).parent / "fixtures" / "batdetect2_nms" / "cases.npz"
CLASS_NAMES = ["a", "b", "c", "d"]
SPEC = EventSpec(decoder="batdetect2", min_freq_hz=10000, max_freq_hz=120000,
                 frame_step_s=128 / 256000, frame_offset_s=384 / 256000, resize_factor=0.5,
                 nms_kernel_size=9, nms_top_k_per_sec=200, detection_threshold=0.01,
                 width_multiple=32, sample_rate=256000)


def _case(name: str) -> dict[str, np.ndarray]:
    with np.load(CASES) as z:
        return {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(name + "/")}


def _outputs(case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"detection": (case["heat"].astype(np.float32) / 65536)[None],
            "size": case["size"].astype(np.float32),
            "classes": case["classes"].astype(np.float32) / 65536}


@pytest.mark.parametrize("name", ["blobs", "plateaus", "threshold_ties", "at_threshold",
                                  "empty", "wide"])
def test_calls_are_batdetect2s(name: str) -> None:
    case = _case(name)
    start = 12.0
    calls = decode_calls(_outputs(case), SPEC, start, 2, CLASS_NAMES,
                         threshold=float(case["threshold"]))
    n = case["ref_det_probs"].size
    assert len(calls) == n
    if name in ("empty", "at_threshold"):  # nothing strictly above the threshold
        assert n == 0
        return
    assert n > 0
    # batdetect2 orders by column only (unstable sort): compare in (column, row) order
    order = np.lexsort((case["ref_y_pos"], case["ref_x_pos"]))
    ref = {k: case[f"ref_{k}"][..., order] for k in ("det_probs", "start_times", "end_times",
                                                     "low_freqs", "high_freqs", "class_probs")}
    ref["class_probs"] = ref["class_probs"][:-1]  # batdetect2 drops the background after run_nms
    np.testing.assert_array_equal([c.det_prob for c in calls], ref["det_probs"])
    # batdetect2 works in float32: agreement to its precision
    np.testing.assert_allclose([c.start_s - start for c in calls], ref["start_times"],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose([c.end_s - start for c in calls], ref["end_times"],
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose([c.low_hz for c in calls], ref["low_freqs"], rtol=1e-6)
    np.testing.assert_allclose([c.high_hz for c in calls], ref["high_freqs"], rtol=1e-6)
    probs = np.array([[c.probs[k] for k in CLASS_NAMES] for c in calls])
    np.testing.assert_array_equal(probs, ref["class_probs"].T)
    best = ref["class_probs"].argmax(axis=0)  # batdetect2's species: first of equals
    assert [c.species for c in calls] == [CLASS_NAMES[i] for i in best]
    assert [c.class_prob for c in calls] == pytest.approx(ref["class_probs"].max(axis=0))
    assert all(c.channel == 2 for c in calls)


def _suppressed(heat: np.ndarray) -> np.ndarray:
    """batdetect2's suppressed map, by scipy: the 9 x 9 maxima kept, 0 elsewhere."""
    pooled = maximum_filter(heat, 9, mode="constant", cval=-np.inf)
    return np.where(pooled == heat, heat, 0)


@pytest.mark.parametrize(("name", "boundary"), [("plateaus", 0.75), ("threshold_ties", 0.5625),
                                               ("at_threshold", 0.5)])
def test_cases_hold_the_ties_they_test(name: str, boundary: float) -> None:
    """Equal scores at the top-k boundary, above the threshold or exactly at it."""
    case = _case(name)
    kept = np.sort(_suppressed(case["heat"].astype(np.float32) / 65536).ravel())[::-1]
    k = int(((64 * 128 + 384) / 256000) * 200)
    assert kept[k - 1] == kept[k] == boundary
    assert float(case["threshold"]) == 0.5


@pytest.mark.parametrize("name", ["blobs", "plateaus", "wide"])
@pytest.mark.parametrize("threshold", [0.0, 0.01, 0.5])
def test_local_maxima_are_the_suppressed_maps_pixels(name: str, threshold: float) -> None:
    heat = _case(name)["heat"].astype(np.float32) / 65536
    ref = np.flatnonzero(_suppressed(heat).ravel() > np.float32(threshold))
    np.testing.assert_array_equal(local_maxima(heat, 9, threshold), ref)


def test_local_maxima_keep_equal_neighbours_and_edges() -> None:
    heat = np.zeros((20, 20), np.float32)
    heat[2, 2] = heat[2, 3] = 0.8  # a flat top: both are maxima of their neighbourhoods
    heat[19, 0] = 0.3  # at the border: the padding never wins
    heat[10, 12] = 0.7  # within 4 pixels of a higher one: suppressed
    heat[8, 8] = 0.9
    got = {divmod(int(i), 20) for i in local_maxima(heat, 9, 0.0)}
    assert got == {(2, 2), (2, 3), (19, 0), (8, 8)}


def test_nyquist_drops_calls_above_it() -> None:
    case = _case("wide")
    all_calls = decode_calls(_outputs(case), SPEC, 0.0, 0, CLASS_NAMES)
    cut = 100000.0
    kept = decode_calls(_outputs(case), SPEC, 0.0, 0, CLASS_NAMES, max_high_hz=cut)
    assert kept == [c for c in all_calls if int(c.high_hz) <= cut]
    assert 0 < len(kept) < len(all_calls)
